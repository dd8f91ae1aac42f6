"""The encoder registry: names, modalities, options and factory results."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import (
    MODALITIES,
    EncoderRegistry,
    EncoderSpec,
    create_encoder,
    get_encoder_spec,
    get_plugin_manager,
    hookimpl,
    list_encoders,
)

BUILTINS = {
    "bow-text": "text",
    "densenet121-2d": "image2d",
    "densenet121-3d": "image3d",
    "hf-clip-text": "text",
    "hf-clip-vision": "image2d",
    "hf-image": "image2d",
    "hf-text": "text",
    "minilm-text": "text",
    "resnet18-2d": "image2d",
    "resnet18-3d": "image3d",
    "resnet50-2d": "image2d",
    "resnet50-3d": "image3d",
    "slicewise-oct": "oct",
    "small-cnn-2d": "image2d",
    "small-cnn-3d": "image3d",
    "tabular-mlp": "tabular",
    "vit-2d": "image2d",
    "vit-3d": "image3d",
}


class Width(nn.Module):
    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.out_features]


def register(specs: list[EncoderSpec], name: str = "test-plugin") -> None:
    class Plugin:
        @hookimpl
        def multifair_encoders(self):
            return specs

    get_plugin_manager().register(Plugin(), name=name)


def test_builtin_names_and_modalities():
    builtins = [
        s for s in list_encoders() if s.plugin == "monai_multifair.networks.encoders.plugin"
    ]  # other plugins may add more
    assert {s.name: s.modality for s in builtins} == BUILTINS
    assert all(s.description for s in builtins)
    for modality in MODALITIES:
        expected = sorted(n for n, m in BUILTINS.items() if m == modality)
        assert [
            s.name for s in list_encoders(modality) if s.plugin == "monai_multifair.networks.encoders.plugin"
        ] == expected


def test_list_encoders_rejects_unknown_modality():
    with pytest.raises(MultiFairError, match=r"`modality`.*got 'image_2d' \(did you mean 'image2d'\?\)"):
        list_encoders("image_2d")


def test_unknown_name_lists_known_names_and_a_close_match():
    with pytest.raises(MultiFairError) as info:
        create_encoder("resnet18_2d")
    message = str(info.value)
    assert message.startswith(
        "unknown encoder 'resnet18_2d' (did you mean 'resnet18-2d'?); known: bow-text, "
    )
    known = message.split("; known: ")[1].split(", ")
    assert known == sorted(known) and set(BUILTINS) <= set(known)
    with pytest.raises(MultiFairError, match="unknown encoder 'zzz'; known"):
        get_encoder_spec("zzz")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "", "modality": "tabular"}, "`name` to be a non-empty string without whitespace, got ''"),
        ({"name": "my cnn", "modality": "tabular"}, "without whitespace, got 'my cnn'"),
        ({"name": "cnn", "modality": "2d"}, r"`modality` .* got '2d'"),
        (
            {"name": "cnn", "modality": "tabular", "factory": 3},
            "`factory` of encoder 'cnn' to be callable, got int",
        ),
        (
            {"name": "cnn", "modality": "tabular", "description": None},
            "`description` .* string, got NoneType",
        ),
    ],
)
def test_encoder_spec_validation(kwargs, match):
    kwargs.setdefault("factory", Width)
    with pytest.raises(MultiFairError, match=match):
        EncoderSpec(**kwargs)


def test_unknown_option_names_encoder_and_close_match():
    with pytest.raises(TypeError) as info:
        create_encoder("tabular-mlp", in_features=3, hiden_dims=(4,))
    message = str(info.value)
    assert (
        "encoder 'tabular-mlp' (plugin 'monai_multifair.networks.encoders.plugin') got an unknown option 'hiden_dims'"
        in message
    )
    assert "(did you mean 'hidden_dims'?)" in message
    assert "accepted options: in_features, hidden_dims, dropout, norm, activation" in message


def test_fixed_option_of_a_preset_is_not_accepted():
    with pytest.raises(TypeError, match="unknown option 'spatial_dims'"):
        create_encoder("resnet18-2d", spatial_dims=3)


def test_missing_required_option():
    with pytest.raises(
        TypeError,
        match=r"encoder 'tabular-mlp' \(plugin 'monai_multifair\.networks\.encoders\.plugin'\) needs the option\(s\) 'in_features'",
    ):
        create_encoder("tabular-mlp")


def test_type_error_from_factory_is_reraised_with_the_encoder_name():
    def factory(**options):
        raise TypeError("width must be an int")

    register([EncoderSpec("kw-only", "tabular", factory, "")])
    with pytest.raises(
        TypeError,
        match=r"encoder 'kw-only' \(plugin 'test-plugin'\) could not be built from options \['a'\]: width must be an int",
    ) as info:
        create_encoder("kw-only", a=1)
    assert isinstance(info.value.__cause__, TypeError)


def test_factory_result_must_be_an_encoder():
    register(
        [
            EncoderSpec("not-module", "tabular", lambda: "a string", ""),
            EncoderSpec("no-width", "tabular", lambda: nn.Identity(), ""),
            EncoderSpec("zero-width", "tabular", lambda: Width(0), ""),
        ]
    )
    with pytest.raises(MultiFairError, match=r"'not-module' .* to return a torch.nn.Module, got str"):
        create_encoder("not-module")
    with pytest.raises(
        MultiFairError, match=r"'no-width' .* positive integer attribute `out_features`.*got None"
    ):
        create_encoder("no-width")
    with pytest.raises(MultiFairError, match="got 0"):
        create_encoder("zero-width")


def test_registry_from_specs_directly():
    specs = [
        EncoderSpec("a", "tabular", Width).with_plugin("p"),
        EncoderSpec("a", "text", Width).with_plugin("q"),
    ]
    specs.append(EncoderSpec("b", "tabular", Width).with_plugin("p"))
    registry = EncoderRegistry(specs)
    assert registry.conflicts == {"a": ("p", "q")}
    assert [s.name for s in registry.list()] == ["b"]
    x = torch.arange(6.0).reshape(2, 3)
    torch.testing.assert_close(registry.create("b", width=1)(x), x[:, :1])

"""Local state dicts into encoders: key mapping, the missing/unexpected report, strictness, freezing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import (
    freeze_parameters,
    load_encoder_weights,
    map_state_dict_keys,
    read_state_dict,
)
from monai_multifair.plugins import create_encoder

# every MONAI encoder of the registry, tiny; the attribute holding the MONAI network itself
MONAI_ENCODERS = {
    "resnet18-2d": ({"widen_factor": 0.125, "in_channels": 1}, "net"),
    "resnet50-3d": ({"widen_factor": 0.125}, "net"),
    "densenet121-2d": ({"init_features": 8, "growth_rate": 4, "block_config": (1, 1)}, "net"),
    "densenet121-3d": ({"init_features": 8, "growth_rate": 4, "block_config": (1, 1)}, "net"),
    "vit-2d": (
        {"img_size": 16, "patch_size": 8, "hidden_size": 16, "mlp_dim": 32, "num_layers": 1, "num_heads": 2},
        "vit",
    ),
}


class Payload:
    """An arbitrary object: its pickle is what ``weights_only`` refuses."""


def _equal_states(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", sorted(MONAI_ENCODERS))
def test_a_monai_state_dict_loads_with_a_prefix_map(tmp_path, name):
    options, attribute = MONAI_ENCODERS[name]
    torch.manual_seed(1)
    source = create_encoder(name, **options)
    # as a MONAI user has it: the network's own state dict (no encoder prefix), saved by DDP ("module.")
    state = {f"module.{k}": v for k, v in getattr(source, attribute).state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "w.pt")
    torch.manual_seed(2)
    target = create_encoder(name, **options)
    assert not _equal_states(source, target)
    report = load_encoder_weights(
        target, tmp_path / "w.pt", key="state_dict", prefix_map={"module.": f"{attribute}."}
    )
    assert _equal_states(source, target)  # the loaded tensors equal the saved ones
    assert report.missing == report.unexpected == () and len(report.loaded) == len(target.state_dict())


def test_small_cnn_and_tabular_encoders_load_their_own_state_dicts(tmp_path):
    for name, options in (("small-cnn-2d", {"channels": (4,)}), ("tabular-mlp", {"in_features": 3})):
        torch.manual_seed(1)
        source = create_encoder(name, **options)
        torch.save(source.state_dict(), tmp_path / f"{name}.pt")
        torch.manual_seed(2)
        target = create_encoder(name, **options)
        load_encoder_weights(target, tmp_path / f"{name}.pt")
        assert _equal_states(source, target)


def test_non_strict_loading_reports_missing_and_unexpected_keys(tmp_path):
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # a backbone and a classifier
    target = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    state = {**source.state_dict(), "extra.scale": torch.ones(1)}
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(
        MultiFairError, match=r"2 tensor\(s\) have another shape.*'1\.weight': file \(2, 4\), encoder \(4,\)"
    ):
        load_encoder_weights(target, tmp_path / "w.pt")
    with pytest.raises(MultiFairError) as info:
        load_encoder_weights(target, tmp_path / "w.pt", exclude=["1."])
    message = str(info.value)
    assert "`weights.strict: true`" in message
    assert "2 encoder key(s) missing from the file: '1.weight', '1.bias'" in message
    assert "1 file key(s) the encoder does not have: 'extra.scale'" in message
    before = target[1].weight.detach().clone()
    report = load_encoder_weights(target, tmp_path / "w.pt", exclude=["1."], strict=False)
    assert report.loaded == ("0.weight", "0.bias") and report.missing == ("1.weight", "1.bias")
    assert report.unexpected == ("extra.scale",) and report.excluded == ("1.weight", "1.bias")
    assert torch.equal(target[0].weight, source[0].weight) and torch.equal(target[1].weight, before)
    assert "loaded 2 tensors; 2 encoder keys missing" in report.summary()


def test_nothing_matching_is_an_error_even_when_not_strict(tmp_path):
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "w.pt")
    with pytest.raises(
        MultiFairError, match=r"none of its 2 keys is a key of the encoder.*`weights\.prefix_map`"
    ):
        load_encoder_weights(nn.Sequential(nn.Linear(2, 2)), tmp_path / "w.pt", strict=False)
    target = nn.Sequential(nn.Linear(2, 2))
    assert load_encoder_weights(target, tmp_path / "w.pt", prefix_map={"": "0."}).loaded == (
        "0.weight",
        "0.bias",
    )


def test_reading_errors(tmp_path):
    with pytest.raises(
        MultiFairError, match=r"`weights\.path` to be a file, got '.*nowhere\.pt' \(it does not exist\)"
    ):
        read_state_dict(tmp_path / "nowhere.pt")
    (tmp_path / "text.pt").write_text("not a torch file")
    with pytest.raises(
        MultiFairError,
        match=r"cannot read weights file '.*text\.pt': it is a text file, not a file written by torch\.save "
        r"\(it starts with 'not a torch file'\)$",
    ):
        read_state_dict(tmp_path / "text.pt")
    with pytest.raises(MultiFairError, match=r"`weights\.path` to be a file, got '.*', which is a folder$"):
        read_state_dict(tmp_path)
    torch.save({"model": {"w": torch.zeros(1)}, "step": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(
        MultiFairError,
        match=r"ckpt\.pt' to map names to tensors, but 2 entries are not tensors \('model', 'step'\); set `weights\.key`.*'model'",
    ):
        read_state_dict(tmp_path / "ckpt.pt")
    with pytest.raises(
        MultiFairError, match=r"`weights\.key` 'state_dict' .* has no 'state_dict'; entries: 'model', 'step'"
    ):
        read_state_dict(tmp_path / "ckpt.pt", key="state_dict")
    assert set(read_state_dict(tmp_path / "ckpt.pt", key="model")) == {"w"}
    torch.save({"w": Payload()}, tmp_path / "pickle.pt")
    with pytest.raises(
        MultiFairError,
        match=r"cannot read weights file '.*pickle\.pt': it holds pickled Python objects besides tensors "
        r"\(.*Payload\), which a safe \(weights-only\) load refuses; nothing in it was run; .*state_dict",
    ) as caught:
        read_state_dict(tmp_path / "pickle.pt")
    assert "weights_only=False" not in str(caught.value)  # torch's advice would run the file's code
    data = (tmp_path / "ckpt.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(MultiFairError, match=r"'.*half\.pt': it is damaged or truncated \(RuntimeError: "):
        read_state_dict(tmp_path / "half.pt")


def test_map_state_dict_keys_longest_prefix_and_collisions():
    state = {"a.b.w": torch.zeros(1), "a.w": torch.ones(1), "c": torch.zeros(1)}
    renamed, dropped = map_state_dict_keys(state, {"a.": "x.", "a.b.": "y."})
    assert set(renamed) == {"y.w", "x.w", "c"} and dropped == []
    with pytest.raises(MultiFairError, match=r"renames both 'a\.w' and 'b\.w' to 'w'"):
        map_state_dict_keys({"a.w": torch.zeros(1), "b.w": torch.zeros(1)}, {"a.": "", "b.": ""})


def test_freeze_parameters_keeps_the_trainable_patterns():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)))
    assert freeze_parameters(net, ["1.1.*"]) == ["1.1.weight", "1.1.bias"]
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["1.1.weight", "1.1.bias"]
    with pytest.raises(
        MultiFairError, match=r"`trainable` pattern .* got 'layer4\.\*', which matches none.*'0\.weight'"
    ):
        freeze_parameters(net, ["layer4.*"])
    assert freeze_parameters(net) == [] and not any(p.requires_grad for p in net.parameters())

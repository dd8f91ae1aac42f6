"""The example plugin package in examples/encoder_plugin installs with pip and is picked up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from _examples import pip_install_example

from monai_multifair.cli import EXIT_OK, main
from monai_multifair.plugins import create_encoder, get_plugin_manager, list_plugins, plugin_load_failures


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_example("encoder_plugin", tmp_path_factory.mktemp("encoder_plugin"))


def test_example_plugin_installs_and_is_listed(installed_example, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(installed_example))
    monkeypatch.delitem(sys.modules, "multifair_example_encoders", raising=False)
    get_plugin_manager(reload=True)
    assert plugin_load_failures() == []
    info = {i.name: i for i in list_plugins()}["example"]
    assert (info.distribution, info.version) == ("multifair-example-encoders", "0.1.0")
    assert info.source == "entry point example = multifair_example_encoders.plugin"
    assert info.encoders == ("example-char-cnn-text", "example-gem-cnn-2d")

    assert main(["plugins"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "multifair-example-encoders" in out
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines() if line.startswith("  example-")}
    assert rows == {
        "example-gem-cnn-2d": ["image2d", "example"],
        "example-char-cnn-text": ["text", "example"],
    }

    # GeM with p = 1 is average pooling of the CNN features
    image = create_encoder("example-gem-cnn-2d", in_channels=1, channels=(4, 6), p=1.0).eval()
    x = torch.randn(3, 1, 16, 16)
    torch.testing.assert_close(image(x), image.features(x).clamp_min(1e-6).mean(dim=(2, 3)))
    assert image(x).shape == (3, image.out_features) == (3, 6)

    text = create_encoder("example-char-cnn-text", channels=5, max_length=20)
    ids = text.tokenize(["IOP 21", ""])
    assert ids.shape == (2, 20) and ids[0, :6].tolist() == [b + 1 for b in b"iop 21"]
    h = text(ids)
    assert h.shape == (2, 5) and torch.equal(h[1], torch.zeros(5))

"""Presets, ``base:`` inheritance, ``--set`` overrides and the YAML round trip."""

from __future__ import annotations

import pytest

from monai_multifair.config import (
    RunConfig,
    apply_overrides,
    list_presets,
    load_config,
    parse_override,
    preset_path,
)
from monai_multifair.errors import MultiFairError

ROOTED = {"fairvision", "fairvlmed", "fairvlmed-vit-bert"}


def test_presets_are_packaged():
    assert set(list_presets()) == {"demo", "demo-quick", "fairvision", "fairvlmed", "fairvlmed-vit-bert"}
    with pytest.raises(MultiFairError, match=r"unknown preset 'dmeo' \(did you mean 'demo'\?\)"):
        preset_path("dmeo")


@pytest.mark.parametrize("name", ["demo", "demo-quick", "fairvision", "fairvlmed", "fairvlmed-vit-bert"])
def test_every_preset_loads_and_round_trips(name, tmp_path):
    overrides = [f"data.root={tmp_path}"] if name in ROOTED else []
    cfg = load_config(name, overrides)
    assert isinstance(cfg, RunConfig) and set(cfg.encoders) == set(cfg.data.modalities)
    path = tmp_path / "resolved.yaml"
    text = cfg.to_yaml(path)
    assert path.read_text() == text
    assert load_config(path) == cfg


def test_demo_quick_inherits_from_demo():
    demo, quick = load_config("demo"), load_config("demo-quick")
    assert quick.data.synthetic.n_patients == 1500 and demo.data.synthetic.n_patients == 3000
    assert quick.trainer.epochs < demo.trainer.epochs
    assert quick.encoders == demo.encoders and quick.fusion == demo.fusion


def test_fairvision_needs_a_root():
    with pytest.raises(MultiFairError, match=r"`data.root`: required when data.source is 'fairvision'"):
        load_config("fairvision")
    cfg = load_config("fairvision", ["data.root=/data/FV"])
    assert (
        cfg.data.image_size == (224, 224) and cfg.data.oct_slices == 32 and cfg.data.label_key == "glaucoma"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer.lr=1e-3", (["trainer", "lr"], 1e-3)),
        ("trainer.amp=true", (["trainer", "amp"], True)),
        ("trainer.grad_clip=null", (["trainer", "grad_clip"], None)),
        ("trainer.grad_clip=", (["trainer", "grad_clip"], None)),
        ("output.dir=runs/a=b", (["output", "dir"], "runs/a=b")),
        ("data.image_size=[64, 48]", (["data", "image_size"], [64, 48])),
        ("encoders.notes.options={vocab_size: 64}", (["encoders", "notes", "options"], {"vocab_size": 64})),
        ("trainer.device='cuda:1'", (["trainer", "device"], "cuda:1")),
        ("trainer.epochs=010", (["trainer", "epochs"], 10)),
    ],
)
def test_parse_override_yaml_semantics(text, expected):
    assert parse_override(text) == expected


def test_override_errors_and_order():
    with pytest.raises(MultiFairError, match="of the form key.path=value"):
        parse_override("trainer.lr")
    with pytest.raises(MultiFairError, match="dotted key path"):
        parse_override("trainer..lr=1")
    with pytest.raises(MultiFairError, match=r"`trainer.epochs` is 3, not a section"):
        apply_overrides({"trainer": {"epochs": 3}}, ["trainer.epochs.x=1"])
    cfg = load_config(
        "demo",
        ["trainer.epochs=2", "trainer.epochs=5", "trainer.grad_clip=1.0", "fusion.demographic_token=yes"],
    )
    assert cfg.trainer.epochs == 5 and cfg.trainer.grad_clip == 1.0 and cfg.fusion.demographic_token is True
    assert load_config("demo").trainer.epochs == 8  # overrides never change the preset


def test_base_inheritance_relative_paths_and_cycles(tmp_path):
    (tmp_path / "parent.yaml").write_text("base: demo-quick\ntrainer:\n  epochs: 2\n")
    (tmp_path / "child.yaml").write_text(
        "base: parent.yaml\nencoders:\n  fundus: {name: small-cnn-2d, options: {in_channels: 1}}\n"
        "  notes: {name: bow-text}\ndata:\n  synthetic: {seed: 7}\n"
    )
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.trainer.epochs == 2 and cfg.data.synthetic.seed == 7 and cfg.data.synthetic.n_patients == 1500
    assert cfg.encoders["notes"].options == {}  # encoders are replaced as a whole, not merged
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(MultiFairError, match="form a cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(MultiFairError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    assert load_config({"base": "demo-quick", "trainer": {"epochs": 1}}).data.synthetic.n_patients == 1500

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
    overrides = [f"data.{name.split('-')[0]}.root={tmp_path}"] if name in ROOTED else []
    cfg = load_config(name, overrides)
    assert isinstance(cfg, RunConfig) and set(cfg.encoders) == set(cfg.data.modalities)
    path = tmp_path / "resolved.yaml"
    text = cfg.to_yaml(path)
    assert path.read_text() == text
    assert load_config(path) == cfg


def test_demo_quick_inherits_from_demo():
    demo, quick = load_config("demo"), load_config("demo-quick")
    assert quick.data.options.n_patients == 1500 and demo.data.options.n_patients == 3000
    assert quick.trainer.epochs < demo.trainer.epochs
    assert quick.encoders == demo.encoders and quick.fusion == demo.fusion


def test_fairvision_needs_a_root():
    with pytest.raises(MultiFairError, match=r"config key `data.fairvision.root` is required \(a string\)"):
        load_config("fairvision")
    cfg = load_config("fairvision", ["data.fairvision.root=/data/FV"])
    options = cfg.data.options
    assert options.image_size == (224, 224) and options.oct_slices == 32 and options.label_key == "glaucoma"


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
    assert cfg.trainer.epochs == 2 and cfg.data.options.seed == 7 and cfg.data.options.n_patients == 1500
    assert cfg.encoders["notes"].options == {}  # encoders are replaced as a whole, not merged
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(MultiFairError, match="form a cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(MultiFairError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    assert load_config({"base": "demo-quick", "trainer": {"epochs": 1}}).data.options.n_patients == 1500


def test_flat_data_keys_of_version_0_1_move_into_the_source_section_with_a_warning():
    with pytest.warns(DeprecationWarning) as caught:
        old = load_config("fairvision", ["data.root=/data/FV", "data.oct_slices=8"])
    assert [str(w.message) for w in caught] == [
        "config key `data.root` is deprecated: write `data.fairvision.root`; the options of a data source live "
        "in its own section",
        "config key `data.oct_slices` is deprecated: write `data.fairvision.oct_slices` (it replaces the value 32 "
        "given there); the options of a data source live in its own section",
    ]
    new = load_config("fairvision", ["data.fairvision.root=/data/FV", "data.fairvision.oct_slices=8"])
    assert old == new and new.data.options.oct_slices == 8
    with pytest.warns(DeprecationWarning, match=r"`data.root`.*replaces the value '/b' given there"):
        assert (
            load_config("fairvision", ["data.root=/a", "data.fairvision.root=/b"]).data.options.root == "/a"
        )
    with pytest.raises(MultiFairError, match=r"`data.oct_slices`: data.source 'fairvlmed' has no option"):
        load_config("fairvlmed", ["data.fairvlmed.root=/a", "data.oct_slices=3"])


def test_switching_the_data_source_drops_the_old_source_section():
    # a FairVLMed config derived from demo-quick: its `data.synthetic` section is not carried over
    derived = load_config(
        {"base": "demo-quick", "data": {"source": "fairvlmed", "fairvlmed": {"root": "/x"}}}
    )
    assert derived.data.source == "fairvlmed" and derived.data.options.root == "/x"
    assert (
        derived.data.to_section()["modalities"] == ["fundus", "notes"]
        and "synthetic" not in derived.data.to_section()
    )
    assert derived.encoders == load_config("demo-quick").encoders  # the encoders still fit fundus + notes
    # the same switch as an override; the old source's modalities and attributes go with its section
    tables = "encoders={csf: {name: tabular-mlp}, genotype_age: {name: tabular-mlp}}"
    switched = load_config("demo-quick", ["data.source=ad_data", tables])
    assert switched.data.attributes == ["sex"] and switched.data.modalities == ["csf", "genotype_age"]
    assert switched.data.unknown == load_config("demo-quick").data.unknown
    # without a switch the section merges key by key as before
    same = load_config({"base": "demo-quick", "data": {"source": "synthetic", "synthetic": {"seed": 3}}})
    assert same.data.options.n_patients == 1500 and same.data.options.seed == 3

"""Config validation: every error names the key path, the rule and the value."""

from __future__ import annotations

import dataclasses

import pytest

from monai_multifair.config import RunConfig, load_config
from monai_multifair.core.multifair_config import MultiFairConfig
from monai_multifair.errors import MultiFairError


def _load(doc, *overrides):
    return load_config(doc, list(overrides))


@pytest.mark.parametrize(
    ("doc", "pattern"),
    [
        (
            {"trainr": {}},
            r"unknown config key `trainr` \(did you mean 'trainer'\?\); known keys: data, encoders",
        ),
        (
            {"trainer": {"learning_rate": 1}},
            r"unknown config key `trainer.learning_rate`.*known keys in `trainer`: epochs",
        ),
        ({"trainer": {"epoch": 3}}, r"`trainer.epoch` \(did you mean 'epochs'\?\)"),
        (
            {"method": {"name": "multifair", "options": {"fairnes_weight": 1}}},
            r"`method.options`: unknown MultiFairConfig key 'fairnes_weight'.*\(did you mean 'fairness_weight'\?\)",
        ),
        (
            {"data": {"synthetic": {"n_patient": 100}}},
            r"`data.synthetic.n_patient` \(did you mean 'n_patients'\?\)",
        ),
        (
            {"encoders": {"fundus": {"name": "small-cnn-2d", "option": {}}, "notes": {"name": "bow-text"}}},
            r"`encoders.fundus.option` \(did you mean 'options'\?\)",
        ),
    ],
)
def test_unknown_keys_name_a_close_match(doc, pattern):
    with pytest.raises(MultiFairError, match=pattern):
        _load(doc)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("trainer.epochs=2.5", r"config key `trainer.epochs`: expected an integer, got 2.5"),
        ("trainer.epochs=0", r"config key `trainer.epochs`: expected an integer >= 1, got 0"),
        ("trainer.lr=fast", r"config key `trainer.lr`: expected a number, got 'fast'"),
        ("trainer.amp=maybe", r"config key `trainer.amp`: expected true or false, got 'maybe'"),
        ("trainer.epochs=true", r"`trainer.epochs`: expected an integer, got True"),
        (
            "trainer.optimizer=adam",
            r"`trainer.optimizer`: expected one of 'adamw', 'sgd', got 'adam' \(did you mean 'adamw'\?\)",
        ),
        (
            "evaluation.selection_metric=esauc",
            r"one of 'es_auc', 'worst_group_auc', 'auc', got 'esauc' \(did you mean 'es_auc'\?\)",
        ),
        (
            "evaluation.threshold=1.5",
            r"`evaluation.threshold`: expected a number in \(0, 1\), 'youden' or 'prevalence', got 1.5",
        ),
        (
            "evaluation.threshold=youdn",
            r"`evaluation.threshold`: expected a number or one of 'youden', 'prevalence'",
        ),
        ("evaluation.n_permutations=-1", r"`evaluation.n_permutations`: expected an integer >= 0, got -1"),
        (
            "trainer.device=gpu",
            r"`trainer.device`: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'",
        ),
        ("trainer.lr=.inf", r"`trainer.lr`: expected a finite number"),
        (
            "data.source=fairvison",
            r"`data.source`: unknown data source 'fairvison' \(did you mean 'fairvision'\?\); known: .*\bsynthetic\b",
        ),
        ("data.unknown=ignore", r"`data.unknown`: expected one of 'error', 'drop', 'keep', got 'ignore'"),
        ("data.attributes=race", r"`data.attributes`: expected a list of a string, got 'race'"),
        (
            "data.attributes=[rase]",
            r"`data.attributes\[0\]`: unknown attribute 'rase'.*\(did you mean 'race'\?\)",
        ),
        (
            "data.modalities=[fundus, note]",
            r"`data.modalities\[1\]`: unknown modality 'note'.*did you mean 'notes'",
        ),
        (
            "data.synthetic.n_patients=10",
            r"config section `data.synthetic`: expected `n_patients` to be an integer >= 30, got 10",
        ),
        (
            "data.oct_slices=8",
            r"`data.oct_slices`: data.source 'synthetic' has no option 'oct_slices' \(its options are the keys of "
            r"`data.synthetic`: ",
        ),
        ("fusion.num_heads=3", r"`fusion.num_heads`: expected a divisor of fusion.fusion_dim \(64\), got 3"),
        (
            "method.options.fairness_weight=-1",
            r"config section `method.options`: expected `fairness_weight` >= 0, got -1",
        ),
        (
            "method.options.group_factor_rule=route",
            r"`method.options`: .*'modality', 'routing', got 'route'.*did you mean 'routing'",
        ),
        ("method.options.preset=papr", r"`method.options`: unknown `preset` 'papr'.*did you mean 'paper'"),
        (
            "method.name=groupdr",
            r"`method.name`: unknown training method 'groupdr' \(did you mean 'groupdro'\?\)",
        ),
        (
            "method.name=threshold-optimizer",
            r"`method.name`: method 'threshold-optimizer' is a postprocessing method",
        ),
        ("method={name: groupdro, options: {eta: 0}}", r"`method.options.eta`: expected a number > 0, got 0"),
        ("method.optons={}", r"unknown config key `method.optons` \(did you mean 'options'\?\)"),
        (
            "output.report_formats=[html, pdf]",
            r"`output.report_formats\[1\]`: expected one of 'html', 'markdown', 'json', got 'pdf'",
        ),
    ],
)
def test_values_are_checked(override, pattern):
    with pytest.raises(MultiFairError, match=pattern):
        _load("demo", override)


def test_source_requirements():
    with pytest.raises(
        MultiFairError,
        match=r"`data.fairvlmed`: required when data.source is 'fairvlmed' \(at least `root`; e.g. --set "
        r"data.fairvlmed.root=VALUE\)",
    ):
        _load({"data": {"source": "fairvlmed"}, "encoders": {}})
    with pytest.raises(MultiFairError, match=r"`data.manifest`: required when data.source is 'manifest'"):
        _load({"data": {"source": "manifest"}})
    with pytest.raises(MultiFairError, match=r"config key `data.manifest.path` is required \(a string\)"):
        _load({"data": {"source": "manifest", "manifest": {"texts": {"notes": "note"}}}})
    with pytest.raises(
        MultiFairError, match=r"unknown modality 'tabular' for data.source 'fairvlmed' with its options"
    ):
        _load("fairvlmed", "data.fairvlmed.root=/x", "data.modalities=[fundus, tabular]")
    cfg = _load(
        "fairvlmed",
        "data.fairvlmed.root=/x",
        "data.fairvlmed.tabular_keys=[age]",
        "data.modalities=[fundus, tabular]",
        "encoders={fundus: {name: small-cnn-2d}, tabular: {name: tabular-mlp, options: {in_features: 1}}}",
    )
    assert cfg.data.modality_kinds() == {"fundus": "image", "tabular": "tabular"}


def test_encoders_match_modalities_and_registry():
    with pytest.raises(MultiFairError, match=r"`encoders`: no encoder for modality 'vitals'"):
        _load("demo", "data.modalities=[fundus, notes, vitals]")
    with pytest.raises(
        MultiFairError, match=r"`encoders.notes`: 'notes' is not among data.modalities \['fundus'\]"
    ):
        _load("demo", "data.modalities=[fundus]")
    with pytest.raises(
        MultiFairError, match=r"`encoders.fundus.name`: unknown encoder 'small-cnn2d'.*small-cnn-2d"
    ):
        _load("demo", "encoders.fundus.name=small-cnn2d")
    with pytest.raises(
        MultiFairError, match=r"`encoders.notes.name`: encoder 'small-cnn-2d' takes image2d inputs.*text data"
    ):
        _load("demo", "encoders.notes.name=small-cnn-2d", "encoders.notes.options={}")
    with pytest.raises(
        MultiFairError, match=r"`encoders.fundus.options.in_chanels`.*did you mean 'in_channels'"
    ):
        _load("demo", "encoders.fundus.options.in_chanels=3")
    cfg = _load(
        "demo",
        "data.modalities=[fundus, notes, vitals]",
        "encoders.vitals.name=tabular-mlp",
        "encoders.vitals.options.in_features=6",
    )
    assert cfg.encoders["vitals"].to_spec() == {"name": "tabular-mlp", "in_features": 6}


def test_multifair_options_follow_the_core_dataclass():
    cfg = _load("demo", "method.options.preset=paper", "method.options.fairness_weight=0.2")
    assert isinstance(cfg.method.options, MultiFairConfig)
    # a run leaves the per-step value checks off unless the config sets them (the datasets check)
    assert cfg.method.options == MultiFairConfig(preset="paper", fairness_weight=0.2, validate_args=False)
    section = cfg.to_dict()["method"]
    assert section["name"] == "multifair"
    assert list(section["options"]) == [f.name for f in dataclasses.fields(MultiFairConfig)]


def test_every_method_option_is_resolved_and_round_trips(tmp_path):
    cfg = _load("demo", "method.name=groupdro", "method.options.eta=0.2")
    assert cfg.to_dict()["method"] == {
        "name": "groupdro",
        "options": {"eta": 0.2, "generalization_adjustment": 0.0, "by": "group"},
    }
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    assert load_config(path) == cfg


def test_switching_the_method_drops_the_previous_methods_options():
    # demo.yaml gives multifair options; --set method.name=erm must not carry them over
    cfg = _load("demo", "method.name=erm")
    assert cfg.method.name == "erm" and cfg.method.options is None
    with pytest.raises(MultiFairError, match=r"unknown MultiFairConfig key 'eta'"):
        _load("demo", "method.options.eta=0.1")  # same method: options are kept and checked


def test_deprecated_modulation_section_maps_to_method():
    with pytest.warns(FutureWarning, match="`modulation` is deprecated"):
        cfg = RunConfig.from_dict({"modulation": {"preset": "paper", "fairness_weight": 0.2}})
    assert cfg.method.name == "multifair"
    # a run leaves the per-step value checks off unless the config sets them (the datasets check)
    assert cfg.method.options == MultiFairConfig(preset="paper", fairness_weight=0.2, validate_args=False)
    with pytest.warns(FutureWarning):
        assert RunConfig.from_dict({"modulation": {"enabled": False}}).method.name == "erm"
    with (
        pytest.warns(FutureWarning),
        pytest.raises(MultiFairError, match="`modulation.enabled`: expected true or false"),
    ):
        RunConfig.from_dict({"modulation": {"enabled": 1}})
    with pytest.raises(MultiFairError, match="`method` and `modulation` exclude each other"):
        RunConfig.from_dict({"modulation": {}, "method": {"name": "erm"}})


def test_yaml_dialect(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  lr: 1e-3\n  weight_decay: 5E-5\n")
    cfg = load_config(path)
    assert cfg.trainer.lr == 1e-3 and cfg.trainer.weight_decay == 5e-5
    path.write_text("trainer:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(MultiFairError, match="duplicate key 'lr'"):
        load_config(path)
    path.write_text("trainer: [1, 2\n")
    with pytest.raises(MultiFairError, match=r"c\.yaml: invalid YAML"):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(MultiFairError, match="expected a YAML mapping of sections"):
        load_config(path)


def test_defaults_are_a_valid_config():
    default = RunConfig()
    assert RunConfig.from_dict({}) == default
    assert default.data.options is not None and default.data.modalities == ["fundus", "notes"]

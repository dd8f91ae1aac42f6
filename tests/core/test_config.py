"""``MultiFairConfig``: presets, overrides, validation messages, dict round trip."""

from __future__ import annotations

import math

import pytest
import yaml

from monai_multifair import MultiFairConfig
from monai_multifair.core import PRESETS
from monai_multifair.errors import MultiFairError


def test_presets_exist():
    assert MultiFairConfig.presets() == ("default", "group-only", "modality-only", "paper", "reference")
    assert set(PRESETS) == {"default", "group-only", "modality-only", "paper", "reference"}
    assert MultiFairConfig().preset == "default"


def test_single_level_presets_switch_the_other_level_off():
    modality = MultiFairConfig(preset="modality-only")
    assert (modality.group_strength, modality.fairness_weight) == (0.0, 0.0)
    assert modality.coefficient_rule == "absolute" and modality.direction_weight == 0.15
    group = MultiFairConfig(preset="group-only")
    assert (group.coefficient_rule, group.direction_weight) == ("none", 0.0)
    assert group.group_strength == 0.3 and group.fairness_weight == 0.5


def test_paper_preset_is_section_3():
    cfg = MultiFairConfig(preset="paper")
    section_3 = {
        "modality_scale": 1.2,  # rho
        "direction_weight": 0.15,  # lambda_gm
        "fairness_weight": 0.5,  # gamma
        "fairness_threshold": 0.04,  # tau
        "group_strength": 0.3,  # kappa
        "ema_decay": 0.9,  # beta
        "coefficient_rule": "absolute",  # step 4
        "coefficient_ema_decay": 0.0,  # step 4 uses the batch value
        "group_factor_rule": "modality",  # step 6
        "fairness_loss": "dispersion",  # step 10
        "gate_smoothing": True,  # step 7: EMA over steps by default
    }
    assert {name: getattr(cfg, name) for name in section_3} == section_3


@pytest.mark.parametrize("preset", ["default", "paper", "reference"])
def test_every_field_is_filled_from_the_preset(preset):
    cfg = MultiFairConfig(preset=preset)
    for name in MultiFairConfig.field_names():
        if name != "guide_hidden":  # None is a legitimate value (fused head width)
            assert getattr(cfg, name) is not None, name
    assert {k: getattr(cfg, k) for k in PRESETS[preset]} == PRESETS[preset]


def test_overrides_win_over_the_preset():
    cfg = MultiFairConfig(preset="paper", fairness_weight=0.2, group_factor_rule="routing")
    assert cfg.fairness_weight == 0.2 and cfg.group_factor_rule == "routing"
    paper = MultiFairConfig(preset="paper")
    for name in MultiFairConfig.field_names():
        if name not in ("fairness_weight", "group_factor_rule"):
            assert getattr(cfg, name) == getattr(paper, name), name
    # A falsy override (0, False) is still an override.
    cfg = MultiFairConfig(preset="paper", direction_weight=0.0, gate_smoothing=False)
    assert cfg.direction_weight == 0.0 and cfg.gate_smoothing is False


BAD_VALUES = [
    ("modality_scale", 0.0),
    ("modality_scale", -1.0),
    ("modality_scale", "1.2"),
    ("modality_scale", True),
    ("direction_weight", -0.1),
    ("fairness_weight", -0.5),
    ("fairness_weight", math.nan),
    ("fairness_threshold", 0.0),
    ("fairness_threshold", math.inf),
    ("group_strength", -0.3),
    ("ema_decay", 1.0),
    ("ema_decay", -0.1),
    ("coefficient_ema_decay", 1.0),
    ("group_factor_min", -0.1),
    ("group_factor_min", 1.5),
    ("group_factor_max", 0.5),
    ("surrogate_temperature", 0.0),
    ("guide_lr", 0.0),
    ("guide_weight_decay", -1e-4),
    ("guide_dropout", 1.0),
    ("eps", 0.0),
    ("guide_hidden", 0),
    ("guide_hidden", 3.5),
    ("guide_hidden", True),
    ("positive_class", -1),
    ("positive_class", 1.0),
    ("positive_class", True),
    ("gate_smoothing", 1),
    ("validate_args", "yes"),
    ("coefficient_rule", "relative"),
    ("group_factor_rule", "route"),
    ("fairness_loss", "variance"),
    ("guide_optimizer", "adam"),
    ("compile", "yes"),
    ("compile", 1),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=[f"{f}={v!r}" for f, v in BAD_VALUES])
def test_invalid_values_name_field_and_value(field, value):
    with pytest.raises(MultiFairError) as info:
        MultiFairConfig(**{field: value})
    message = str(info.value)
    assert f"`{field}`" in message
    assert repr(value) in message


@pytest.mark.parametrize(
    ("field", "value", "suggestion"),
    [
        ("coefficient_rule", "absolut", "absolute"),
        ("group_factor_rule", "routng", "routing"),
        ("fairness_loss", "shortfal", "shortfall"),
        ("guide_optimizer", "adamww", "adamw"),
        ("preset", "papr", "paper"),
    ],
)
def test_choices_suggest_a_close_match(field, value, suggestion):
    with pytest.raises(MultiFairError, match=f"did you mean '{suggestion}'"):
        MultiFairConfig(**{field: value})


def test_unknown_preset_lists_known_presets():
    with pytest.raises(
        MultiFairError,
        match="unknown `preset` 'fast'; known: default, group-only, modality-only, paper, reference",
    ):
        MultiFairConfig(preset="fast")


def test_from_dict_unknown_key_with_close_match():
    with pytest.raises(
        MultiFairError, match=r"unknown MultiFairConfig key 'ema_decy'.*did you mean 'ema_decay'"
    ):
        MultiFairConfig.from_dict({"preset": "paper", "ema_decy": 0.5})
    assert MultiFairConfig.from_dict(None) == MultiFairConfig()


@pytest.mark.parametrize("preset", ["default", "paper", "reference"])
def test_to_dict_from_dict_roundtrip(preset):
    cfg = MultiFairConfig(preset=preset, fairness_loss="shortfall", guide_hidden=16)
    plain = cfg.to_dict()
    assert list(plain) == list(MultiFairConfig.field_names())
    # YAML keys equal field names, and the plain form survives a YAML round trip.
    assert MultiFairConfig.from_dict(yaml.safe_load(yaml.safe_dump(plain))) == cfg


def test_replace_validates():
    cfg = MultiFairConfig(preset="paper")
    assert cfg.replace(fairness_threshold=0.07).fairness_threshold == 0.07
    with pytest.raises(MultiFairError, match="`fairness_threshold` > 0, got -0.07"):
        cfg.replace(fairness_threshold=-0.07)


def test_compile_switch_reads_yaml_on_and_off():
    """``compile: on`` / ``off`` unquoted are YAML booleans: they mean "on" / "off"; default "auto"."""
    assert MultiFairConfig().compile == "auto" and MultiFairConfig(preset="paper").compile == "auto"
    assert MultiFairConfig.from_dict(yaml.safe_load("compile: on")).compile == "on"
    assert MultiFairConfig.from_dict(yaml.safe_load("compile: off")).compile == "off"
    assert MultiFairConfig.from_dict(yaml.safe_load("compile: auto")).compile == "auto"
    with pytest.raises(MultiFairError, match="expected `compile` to be one of 'auto', 'on', 'off', got 'of'"):
        MultiFairConfig(compile="of")

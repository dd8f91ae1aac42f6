"""Hostile or broken config files: bounded YAML, named files, presets not shadowed, synonym hints."""

from __future__ import annotations

import time

import pytest

from monai_multifair.config import load_config, load_raw, preset_path
from monai_multifair.config.validation import MAX_YAML_DEPTH, MAX_YAML_VALUES, load_yaml_text, plain
from monai_multifair.errors import SYNONYMS, MultiFairError, close_match_hint


def _laughs(levels: int = 9) -> str:
    """A "billion laughs" document: 10**levels values once its aliases are expanded."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_encoder_options_is_refused_before_expansion(tmp_path):
    path = tmp_path / "bomb.yaml"
    options = _laughs().replace("\n", "\n    ")
    path.write_text(f"base: demo-quick\nencoders:\n  notes:\n    name: bow-text\n    options:\n    {options}")
    start = time.perf_counter()
    with pytest.raises(MultiFairError) as info:
        load_config(path)
    assert time.perf_counter() - start < 5  # the issue measured > 120 s and 5.4 GB before this bound
    message = str(info.value)
    assert message == (
        f"{path.resolve()}: YAML document expands to more than {MAX_YAML_VALUES:,} values "
        "(at line 10, through aliases/anchors); refused"
    )


def test_small_aliases_still_work(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "base: demo-quick\n"
        "trainer: &t {epochs: 2, lr: 0.01}\n"
        "encoders:\n"
        "  fundus: &cnn {name: small-cnn-2d, options: {in_channels: 1, channels: [4, 8]}}\n"
        "  notes: {name: bow-text, options: {vocab_size: 64}}\n"
    )
    cfg = load_config(path)
    assert cfg.trainer.epochs == 2 and cfg.encoders["fundus"].options == {
        "in_channels": 1,
        "channels": [4, 8],
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[" * 5000 + "]" * 5000, 1),  # the 5,000 nested brackets
        ("a:\n  b: " + "{c: " * 5000 + "1" + "}" * 5000, 2),
        ("x: &x " + "[" * 40 + "1" + "]" * 40 + "\ny: " + "[" * 30 + "*x" + "]" * 30, 2),  # deep via an alias
    ],
)
def test_deep_nesting_is_one_error_not_a_recursion_error(tmp_path, text, line):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(MultiFairError) as info:
        load_raw(path)
    assert str(info.value) == (
        f"{path.resolve()}: YAML nesting deeper than {MAX_YAML_DEPTH} levels (at line {line}); refused"
    )


def test_depth_bound_is_exact():
    assert load_yaml_text("[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH, "x") == eval(
        "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    )
    with pytest.raises(MultiFairError, match="deeper than 64 levels"):
        load_yaml_text("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1), "x")


def test_recursive_alias_is_refused():
    with pytest.raises(
        MultiFairError, match=r"^cfg: YAML alias \*a at line 1 refers to a collection that contains it"
    ):
        load_yaml_text("a: &a [1, *a]", "cfg")


def test_overrides_are_bounded_too():
    with pytest.raises(MultiFairError, match=r"^override 'trainer\.lr=.*': YAML nesting deeper than 64"):
        load_config("demo-quick", ["trainer.lr=" + "[" * 100 + "]" * 100])


def test_self_referencing_python_values_are_an_error():
    value: list = []
    value.append(value)
    with pytest.raises(MultiFairError, match="expected values nested at most 64 levels deep"):
        plain({"a": value}, "encoders.x.options")


def test_non_utf8_config_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("trainer:\n  epochs: 2\n# r\u00e9sum\u00e9\n".encode("latin-1"))
    with pytest.raises(MultiFairError) as info:
        load_config(path)
    assert (
        str(info.value)
        == f"config file {str(path.resolve())!r} is not UTF-8 text: byte 0xe9 at line 3 (save it as UTF-8)"
    )


def test_a_folder_named_like_a_preset_does_not_shadow_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo-quick").mkdir()
    assert load_raw("demo-quick") == load_raw(preset_path("demo-quick"))  # the preset, not the folder
    with pytest.raises(MultiFairError, match=r"config 'demo-quick/' is a folder, not a YAML file"):
        load_raw("demo-quick/")
    with pytest.raises(MultiFairError, match=r"config 'other' is a folder, not a YAML file"):
        (tmp_path / "other").mkdir()
        load_raw("other")


def test_a_file_named_like_a_preset_is_ambiguous(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("trainer: {epochs: 1}\n")
    with pytest.raises(
        MultiFairError, match=r"'demo' names both a packaged preset and the file .*write './demo'"
    ):
        load_raw("demo")
    assert load_raw("./demo") == {"trainer": {"epochs": 1}}


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("trainer.learning_rate=0.1", "'lr'"),
        ("trainer.num_epochs=3", "'epochs'"),
        ("trainer.batchsize=8", "'batch_size'"),
        ("evaluation.bootstrap=100", "'n_boot'"),
        ("data.sensitive_attributes=[race]", "'attributes'"),
    ],
)
def test_documented_synonym_hints_appear(override, hint):
    key = override.split("=")[0]
    with pytest.raises(
        MultiFairError, match=rf"^unknown config key `{key}` \(did you mean {hint}\?\); known keys"
    ):
        load_config("demo-quick", [override])


def test_synonyms_only_point_at_valid_choices():
    assert close_match_hint("learning_rate", ["epochs", "batch_size"]) == ""
    assert all(key == key.lower() and targets for key, targets in SYNONYMS.items())

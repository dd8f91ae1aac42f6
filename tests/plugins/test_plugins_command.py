"""``multifair plugins``."""

from __future__ import annotations

import json

import pytest

from monai_multifair.cli import EXIT_FAILURE, EXIT_OK, main
from monai_multifair.plugins import (
    BUILTIN_PLUGINS,
    ENV_DISABLE_AUTOLOAD,
    get_plugin_manager,
    list_encoders,
    list_methods,
)


@pytest.fixture
def builtins_only(monkeypatch):
    """Only the built-ins, whatever else is installed in this environment."""
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    get_plugin_manager(reload=True)


def test_lists_plugins_and_encoders(builtins_only, capsys):
    assert main(["plugins"]) == EXIT_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"Plugins ({len(BUILTIN_PLUGINS)}):"
    assert lines[2].split()[:4] == ["monai_multifair.data.ad_data", "0.1.0", "monai-multifair", "built"]
    assert f"Encoders ({len(list_encoders())}):" in lines
    start = lines.index(f"Encoders ({len(list_encoders())}):") + 2
    rows = {line.split()[0]: line.split()[1:3] for line in lines[start : lines.index("", start)]}
    assert rows["slicewise-oct"] == ["oct", "monai_multifair.networks.encoders.plugin"]
    assert rows["bow-text"] == ["text", "monai_multifair.networks.encoders.plugin"]
    assert "failed" not in out
    # fairness methods with their kind and options (defaults from the options dataclasses)
    methods = {
        line.split()[0]: line.split()[1:3]
        for line in lines[lines.index(f"Fairness methods ({len(list_methods())}):") + 2 :]
        if line.startswith("  ") and not line.startswith("    ")
    }
    assert methods["groupdro"] == ["training", "monai_multifair.methods.group_dro"]
    assert methods["threshold-optimizer"] == ["postprocessing", "monai_multifair.methods.threshold_optimizer"]
    assert "    groupdro options: eta=0.01, generalization_adjustment=0.0, by=group" in lines
    assert "    erm options: none" in lines


def test_json_and_modality_filter(builtins_only, capsys):
    assert main(["plugins", "--json", "--modality", "image3d"]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in document["encoders"]] == [s.name for s in list_encoders("image3d")]
    assert {e["modality"] for e in document["encoders"]} == {"image3d"}
    plugins = {p["name"]: p for p in document["plugins"]}
    assert set(plugins) == set(BUILTIN_PLUGINS)
    assert {p["distribution"] for p in plugins.values()} == {"monai-multifair"}
    encoders = plugins["monai_multifair.networks.encoders.plugin"]
    assert encoders["hooks"] == ["multifair_encoders"] and encoders["methods"] == []
    assert plugins["monai_multifair.methods.fair_identity_scaling"]["methods"] == ["fis"]
    assert plugins["monai_multifair.data.support2"]["data_sources"] == ["support2"]
    # every built-in method and data source is listed by the plugin that registered it
    listed = sorted(m for p in plugins.values() for m in p["methods"])
    assert listed == [spec.name for spec in list_methods()]  # the built-ins, the registry's order
    assert {"erm", "fis", "groupdro", "multifair", "threshold-optimizer"} <= set(listed)
    sources = {d["name"]: d for d in document["data_sources"]}
    assert sources["support2"]["split"] == "rows" and sources["manifest"]["split"] == "rows"
    assert sources["fairvision"]["split"] == "fixed" and sources["synthetic"]["split"] == "generated"
    assert sources["synthetic"]["modalities"] == {"fundus": "image", "notes": "text", "vitals": "tabular"}
    (fis,) = [m for m in document["methods"] if m["name"] == "fis"]
    assert fis["kind"] == "training" and fis["options"]["scaling_coefficient"] == 0.5
    assert document["failures"] == [] and document["conflicts"] == {} and document["method_conflicts"] == {}


def test_failures_and_conflicts_are_listed_with_exit_code_1(install_fake, good_plugin, unique, capsys):
    first, second, broken = unique(), unique(), unique()
    encoder = unique("fake-enc")
    install_fake("first-dist", {"first": first}, {first: good_plugin(encoder)})
    install_fake("second-dist", {"second": second}, {second: good_plugin(encoder)})
    install_fake("broken-dist", {"broken": broken}, {broken: "raise ImportError('needs CUDA 99')\n"})
    get_plugin_manager(reload=True)

    assert main(["plugins"]) == EXIT_FAILURE
    captured = capsys.readouterr()
    assert f"  {encoder}: first, second" in captured.out
    assert (
        f"plugin 'broken' (entry point broken = {broken} from broken-dist 1.2.3) failed at import: "
        in captured.out
    )
    assert "ImportError: needs CUDA 99" in captured.out
    assert "1 plugin failure(s), 1 encoder name conflict(s), 0 method name conflict(s)" in captured.err

    assert main(["plugins", "--json"]) == EXIT_FAILURE
    document = json.loads(capsys.readouterr().out)
    assert document["conflicts"] == {encoder: ["first", "second"]}
    (failure,) = document["failures"]
    assert failure["plugin"] == "broken" and failure["error"] == "ImportError: needs CUDA 99"
    names = {p["name"] for p in document["plugins"]}
    assert {"first", "second", *BUILTIN_PLUGINS} <= names and "broken" not in names

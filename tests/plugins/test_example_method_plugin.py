"""The example method plugin in examples/method_plugin installs with pip, is listed and trains by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _examples import load_example, pip_install_example

from monai_multifair.cli import EXIT_OK, main
from monai_multifair.plugins import (
    ENV_DISABLE_PLUGINS,
    create_method,
    get_plugin_manager,
    list_plugins,
    plugin_load_failures,
)

TINY = str(Path(__file__).resolve().parents[1] / "tiny.yaml")


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_example("method_plugin", tmp_path_factory.mktemp("method_plugin"))


@pytest.fixture
def example_loaded(installed_example, monkeypatch):
    yield from load_example(monkeypatch, installed_example, "multifair_example_methods")


def test_listed_with_its_options(example_loaded, capsys):
    assert plugin_load_failures() == []
    info = {i.name: i for i in list_plugins()}["example-methods"]
    assert (info.distribution, info.version) == ("multifair-example-methods", "0.1.0")
    assert info.methods == ("example-focal",) and info.encoders == ()
    assert main(["plugins"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "    example-focal options: gamma=2.0, group_balance=False" in out.splitlines()


def test_joins_the_default_comparison(example_loaded):
    from monai_multifair.comparison import CompareConfig

    labels = [m.label for m in CompareConfig.from_dict({"datasets": ["cohort"]}).methods]
    assert "example-focal" in labels and {"erm", "multifair", "groupdro"} <= set(labels)
    with pytest.MonkeyPatch.context() as patch:  # the same environment without the plugin
        patch.setenv(ENV_DISABLE_PLUGINS, "example-methods")
        get_plugin_manager(reload=True)
        without = [m.label for m in CompareConfig.from_dict({"datasets": ["cohort"]}).methods]
    get_plugin_manager(reload=True)
    assert without == [label for label in labels if label != "example-focal"]


def test_focal_weighting_against_a_hand_computation(example_loaded):
    method = create_method("example-focal")
    from monai_multifair.methods import MethodContext

    context = MethodContext(
        network=torch.nn.Linear(1, 1),
        device=torch.device("cpu"),
        num_classes=2,
        num_groups=2,
        group_labels=("a", "b"),
        train_labels=torch.tensor([0, 1]),
        train_groups=torch.tensor([0, 1]),
    )
    method.setup(context)
    losses = torch.tensor([0.1, 1.0, 2.0])
    value = method.weighting(losses, torch.zeros(3, dtype=torch.long), torch.tensor([0, 0, 1]))
    expected = ((1 - torch.exp(-losses)) ** 2 * losses).mean()
    torch.testing.assert_close(value, expected)


def test_trained_by_name(example_loaded, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--config", TINY, "--output", str(run), "--no-progress"]
    args += ["--set", "method.name=example-focal", "--set", "method.options.gamma=1.5"]
    args += ["--set", "trainer.epochs=1", "--set", "evaluation.n_boot=0", "--set", "output.report_formats=[]"]
    assert main(args) == EXIT_OK
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"]["name"] == "example-focal"
    assert metrics["method"]["options"] == {"gamma": 1.5, "group_balance": False}
    assert metrics["method"]["description"] == "focal loss (gamma 1.5)"
    assert "mean_weight" in (run / "training_stats.csv").read_text().splitlines()[0]
    assert main([*args[:-6], "--set", "method.options.gama=1", "--overwrite"]) == 2
    assert "(did you mean 'gamma'?)" in capsys.readouterr().err

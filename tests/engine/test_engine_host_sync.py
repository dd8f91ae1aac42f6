"""``multifair train`` steps are free of host synchronisations: the run leaves the per-step value
checks off (the datasets check labels, groups and modalities when they load the data)."""

from __future__ import annotations

import numpy as np
import pytest
from monai.engines import SupervisedTrainer

from monai_multifair.config import load_config
from monai_multifair.core import MultiFairConfig
from monai_multifair.core.sync import HostSyncCounter
from monai_multifair.data import build_datasets
from monai_multifair.engine import train
from monai_multifair.errors import MultiFairError


@pytest.fixture
def counted_steps(monkeypatch):
    """Every trainer iteration (prepare, forward, method handlers, backward, optimizer step) runs under
    the host-sync counter; returns the list of per-step counts and the ops seen."""
    counts: list[int] = []
    ops: dict[str, int] = {}
    original = SupervisedTrainer._iteration

    def counted(self, engine, batch):
        with HostSyncCounter() as counter:
            out = original(self, engine, batch)
        counts.append(counter.count)
        for name, n in counter.ops.items():
            ops[name] = ops.get(name, 0) + n
        return out

    monkeypatch.setattr(SupervisedTrainer, "_iteration", counted)
    return counts, ops


@pytest.mark.parametrize(
    "overrides",
    [
        (),  # multifair, default preset
        ("method.name=groupdro", "method.options={by: group_label, generalization_adjustment: 1.0}"),
        ("method.name=fis",),
    ],
    ids=["multifair", "groupdro", "fis"],
)
def test_train_steps_have_no_host_sync(tiny_config, tmp_path, counted_steps, overrides):
    counts, ops = counted_steps
    config = tiny_config("trainer.epochs=1", *overrides)
    train(config, tmp_path / "run", progress=False, stats_interval=1000)
    assert len(counts) == 8  # 256 training samples of 400 / 32
    assert sum(counts) == 0, ops


def test_the_step_counter_sees_the_checks_a_config_asks_for(tiny_config, tmp_path, counted_steps):
    """The oracle of the test above can fail: with ``validate_args: true`` in the config, the modulator's
    value checks (labels, groups, logits, each modality's features) read back 5 values per step."""
    counts, ops = counted_steps
    train(
        tiny_config("trainer.epochs=1", "method.options.validate_args=true"), tmp_path / "run", progress=False
    )
    assert counts == [5] * 8, ops


def test_a_run_config_leaves_validate_args_off_unless_it_sets_it(tiny_config):
    assert tiny_config().method.options.validate_args is False
    assert tiny_config("method.options.validate_args=true").method.options.validate_args is True
    assert load_config("demo-quick", []).method.options.validate_args is False
    assert MultiFairConfig().validate_args is True  # the plain-loop API keeps its default


def test_group_ids_outside_the_training_groups_are_refused(tiny_config, tmp_path):
    config = tiny_config()
    datasets = build_datasets(config)
    test = datasets["test"]
    test._groups = np.where(np.arange(len(test)) == 3, datasets["train"].num_groups, np.asarray(test._groups))
    with pytest.raises(
        MultiFairError, match=r"the test split has group ids in \[0, 3\], expected them in \[0, 3\)"
    ):
        train(config, tmp_path / "run", progress=False, datasets=datasets)


def test_a_run_saved_with_the_checks_on_resumes_without_them(tiny_config, tmp_path):
    """Run folders written before the checks were left off hold ``validate_args: true``: resuming them
    with a config that leaves it unset is allowed (the checks change no number)."""
    from monai_multifair.engine.run_folder import check_resume

    tiny_config("method.options.validate_args=true").to_yaml(tmp_path / "config.yaml")
    check_resume(tiny_config(), tmp_path, tmp_path / "checkpoints" / "checkpoint_epoch=1.pt")
    with pytest.raises(MultiFairError, match=r"`method.options.preset` \('default' -> 'paper'\)"):
        check_resume(tiny_config("method.options.preset=paper"), tmp_path, tmp_path / "checkpoint_epoch=1.pt")

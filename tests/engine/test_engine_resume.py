"""An interrupted ``train`` resumed from its last checkpoint ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events

from monai_multifair.engine import train

# MultiFair on (its guide heads, EMAs and previous AUCs must resume), dropout in the fusion (the random
# state must resume), gradient clipping, and a selection that can change after the interruption.
SETTINGS = (
    "fusion.dropout=0.2",
    "trainer.grad_clip=1.0",
    "evaluation.selection_metric=auc",
    "evaluation.n_boot=0",
)


class InterruptAt:
    """Raise ``KeyboardInterrupt`` (as Ctrl-C does) at iteration ``index`` of epoch ``epoch``."""

    def __init__(self, epoch: int, index: int) -> None:
        self.epoch, self.index = epoch, index

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        local = (engine.state.iteration - 1) % engine.state.epoch_length + 1
        if engine.state.epoch == self.epoch and local == self.index:
            raise KeyboardInterrupt


def _load(path):
    return torch.load(path, weights_only=True)


def _assert_same_tensors(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _assert_same_tensors(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_tensors(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert a == b


@pytest.fixture(scope="module")
def uninterrupted(tiny_config, tmp_path_factory):
    return train(tiny_config(*SETTINGS), tmp_path_factory.mktemp("straight"), progress=False)


def _assert_same_run(resumed, reference):
    last, ref_last = _load(resumed.files["last_checkpoint"]), _load(reference.files["last_checkpoint"])
    assert resumed.files["last_checkpoint"].name == "checkpoint_epoch=3.pt"
    for key in ("model", "optimizer", "method", "trainer", "monitor", "validation", "rng"):
        _assert_same_tensors(last[key], ref_last[key])
    _assert_same_tensors(_load(resumed.files["best_checkpoint"]), _load(reference.files["best_checkpoint"]))
    assert resumed.best_epoch == reference.best_epoch
    assert resumed.training_stats.equals(reference.training_stats)
    assert resumed.validation.equals(reference.validation)
    assert resumed.predictions.equals(reference.predictions)
    for name in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds", "group_auc"):
        _assert_same_tensors(resumed.metrics[name], reference.metrics[name])


def test_interrupted_mid_epoch_then_resumed_equals_uninterrupted(uninterrupted, tiny_config, tmp_path):
    assert uninterrupted.best_epoch == 3  # the best model is chosen after the interruption
    config = tiny_config(*SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=False, handlers=[InterruptAt(epoch=3, index=2)])
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == [
        "best.pt",
        "checkpoint_epoch=2.pt",
    ]
    epoch2 = _load(tmp_path / "checkpoints" / "checkpoint_epoch=2.pt")["model"]
    resumed = train(config, tmp_path, resume=True, progress=False)
    _assert_same_run(resumed, uninterrupted)
    final = _load(resumed.files["last_checkpoint"])["model"]
    assert any(not torch.equal(epoch2[k], final[k]) for k in final)  # epoch 3 did train
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == [
        "best.pt",
        "checkpoint_epoch=3.pt",
    ]


def test_finished_run_extended_by_resuming_with_more_epochs(uninterrupted, tiny_config, tmp_path):
    train(tiny_config(*SETTINGS, "trainer.epochs=2"), tmp_path, progress=False)
    resumed = train(tiny_config(*SETTINGS), tmp_path, resume=True, progress=False)
    _assert_same_run(resumed, uninterrupted)


def test_update_mode_interrupted_then_resumed_equals_uninterrupted(tiny_config, tmp_path):
    """``modulate="update"``: the optimizer hooks that scale the encoder updates are re-attached on
    resume, and the run ends exactly where the uninterrupted one ends."""
    settings = (*SETTINGS, "method.options.modulate=update")
    straight = train(tiny_config(*settings), tmp_path / "straight", progress=False)
    plain = train(tiny_config(*SETTINGS), tmp_path / "gradient", progress=False)
    # the mode acts: the encoders end elsewhere than in gradient mode (same data, same start)
    model, gradient_model = (
        _load(straight.files["last_checkpoint"])["model"],
        _load(plain.files["last_checkpoint"])["model"],
    )
    assert any(not torch.equal(model[k], gradient_model[k]) for k in model if "encoders" in k)
    assert {"update_scale/fundus", "update_scale/notes"} <= set(straight.training_stats)
    run = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(*settings), run, progress=False, handlers=[InterruptAt(epoch=2, index=3)])
    resumed = train(tiny_config(*settings), run, resume=True, progress=False)
    _assert_same_run(resumed, straight)


def test_resuming_a_complete_run_says_so_and_reproduces_its_results(uninterrupted, tiny_config, tmp_path):
    import shutil

    shutil.copytree(uninterrupted.run_dir, tmp_path / "run")
    lines: list[str] = []
    again = train(tiny_config(*SETTINGS), tmp_path / "run", resume=True, progress=False, log=lines.append)
    complete = [line for line in lines if "already complete" in line]
    assert complete == [
        "resume: the run is already complete (3 of 3 epochs in checkpoint_epoch=3.pt); nothing to train: the best "
        "model is evaluated on the test split again and the run's results (metrics, predictions, reports, "
        "training and validation tables) are rewritten; raise trainer.epochs to train further"
    ]
    assert not any(line.startswith("epoch ") for line in lines), lines  # no epoch was trained
    _assert_same_run(again, uninterrupted)

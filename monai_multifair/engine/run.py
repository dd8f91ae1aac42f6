"""``train`` and ``evaluate``: a whole run from a :class:`~monai_multifair.config.RunConfig`.

A run folder holds::

    config.yaml            the resolved config (what ran)
    checkpoints/           checkpoint_epoch=N.pt (the last epoch: everything needed to resume) and best.pt
    metrics.json           test metrics of the best model (AUC, ES-AUC, worst-group AUC, DPD, DEOdds, group AUC)
    predictions.csv        one row per test sample: id, label, score, group, group_label, attributes
    training_stats.csv     loss and the method's statistics every `stats_interval` iterations
    validation.csv         validation metrics per validated epoch
    report.html/.md/.json  the fairness audit (output.report_formats)

Under ``torchrun`` every rank calls :func:`train` (or :func:`evaluate`) with the same config: rank 0
alone decides about and writes the run folder (config, checkpoints, metrics, predictions, reports, logs),
the others train their share of every batch (DDP), validate and predict their share of the splits, and
receive the gathered predictions, so selection is identical on every rank. Every rank must see the run
folder (a shared filesystem) to resume.

The pieces live next door: :mod:`~monai_multifair.engine.run_folder` (may the run start, continue or
start over), :mod:`~monai_multifair.engine.run_parts` (device, data, network), the training method from
the plugin registry (:mod:`monai_multifair.methods`), :mod:`~monai_multifair.engine.selection`
(validation and the best model), :mod:`~monai_multifair.engine.checkpoint_state` (what checkpoints
hold) and :mod:`~monai_multifair.engine.results` (what the run leaves behind).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import CheckpointLoader
from torch import nn

from monai_multifair.atomic_io import atomic_write_text, remove_stale_temporaries
from monai_multifair.config import RunConfig
from monai_multifair.core.distributed import barrier, on_rank_zero, rank
from monai_multifair.data import PRESENCE_KEY, SPLIT_NAMES, MultimodalDataset
from monai_multifair.engine.builders import build_optimizer
from monai_multifair.engine.checkpoint_files import (
    BestModelWriter,
    EpochCheckpointWriter,
    check_checkpoint_record,
)
from monai_multifair.engine.checkpoint_state import (
    RNGState,
    ScalerState,
    SelectionRecord,
    apply_model_state,
    checkpoint_epoch,
    load_model_state,
)
from monai_multifair.engine.gradient_clipping import GradientClipper
from monai_multifair.engine.loaders import EpochShuffle
from monai_multifair.engine.modality_dropout import ModalityDropout
from monai_multifair.engine.monitoring import ProgressReporter, TrainingMonitor
from monai_multifair.engine.outputs import HEADLINE_METRICS, write_json
from monai_multifair.engine.results import write_split_results
from monai_multifair.engine.run_folder import (
    BEST_CHECKPOINT,
    RunFolderLock,
    check_evaluation_folder,
    latest_checkpoint,
    open_run_folder,
    with_output_dir,
)
from monai_multifair.engine.run_parts import RunParts, build_run_parts, quiet
from monai_multifair.engine.selection import SelectionScore, ValidationRunner
from monai_multifair.errors import MultiFairError, close_match_hint, raised_on_every_rank
from monai_multifair.handlers import FairnessEvaluationHandler
from monai_multifair.methods import FairnessMethod
from monai_multifair.metrics import UndefinedGroupMetricWarning
from monai_multifair.report import AuditReport

__all__ = ["RunResult", "evaluate", "train"]


@dataclass
class RunResult:
    """What :func:`train` or :func:`evaluate` produced.

    Attributes:
        run_dir: the run folder.
        config: the resolved config.
        metrics: the ``metrics.json`` content: ``auc``, ``es_auc``, ``worst_group_auc``, ``dpd``,
            ``deodds`` (NaN where undefined), ``group_auc``, ``n``, ``group_counts``, ``best_epoch``,
            ``validation`` (the best epoch's validation metrics), ``method``, ``postprocessing`` (when
            configured), ``notes``, ...
        predictions: the ``predictions.csv`` frame.
        best_epoch: epoch of the selected model (``None`` if unknown, e.g. a bare state dict).
        training_stats: per-interval loss and method statistics (``None`` for ``evaluate``).
        validation: validation metrics per validated epoch (``None`` for ``evaluate``).
        report: the audit report (``None`` when ``output.report_formats`` is empty).
        files: name -> path of every file written.
        wall_time_s: seconds from start to the last file written.
    """

    run_dir: Path
    config: RunConfig
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    best_epoch: int | None = None
    training_stats: pd.DataFrame | None = None
    validation: pd.DataFrame | None = None
    report: AuditReport | None = field(default=None, repr=False)
    files: dict[str, Path] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def headline(self) -> dict[str, float]:
        """``{metric: value}`` of :data:`~monai_multifair.engine.outputs.HEADLINE_METRICS`."""
        return {name: self.metrics[name] for name in HEADLINE_METRICS}


def _stamp(result: RunResult, started: float) -> RunResult:
    """Record the wall time since ``started`` in the result and its ``metrics.json``."""
    result.wall_time_s = time.perf_counter() - started
    result.metrics["wall_time_s"] = result.wall_time_s
    write_json(result.metrics, result.files["metrics"])
    return result


def _method_summary(config: RunConfig, method: FairnessMethod) -> dict[str, Any]:
    return {"name": config.method.name, "description": method.describe(), **config.to_dict()["method"]}


# ---------------------------------------------------------------------------------------------------
# the pieces of a training run
def _validation(parts: RunParts, ckpt_dir: Path) -> tuple[SupervisedEvaluator, BestModelWriter]:
    """The evaluator: fairness metrics, the selection score, and the best-model writer."""
    evaluation = parts.config.evaluation
    train_set = parts.datasets["train"]
    fairness = FairnessEvaluationHandler(
        group_key="group",
        label_key="label",
        num_groups=train_set.num_groups,
        group_labels=train_set.group_labels,
        threshold=0.5
        if isinstance(evaluation.threshold, str)
        else evaluation.threshold,  # a rule is fitted after
        alpha=evaluation.alpha,
    )
    loader = parts.loader("val")  # this rank's unpadded share; the fairness handler gathers every share
    evaluator = SupervisedEvaluator(val_data_loader=loader, epoch_length=len(loader), **parts.engine_kwargs())
    quiet(evaluator, "evaluator")
    selection = SelectionRecord(evaluator, evaluation.selection_metric)
    best_saver = BestModelWriter(ckpt_dir / BEST_CHECKPOINT, {"model": parts.network, "selection": selection})
    for handler in (fairness, SelectionScore(evaluation.selection_metric), best_saver):
        handler.attach(evaluator)
    return evaluator, best_saver


def _trainer(parts: RunParts, loader: Any, optimizer: Any) -> SupervisedTrainer:
    trainer_cfg = parts.config.trainer
    trainer = SupervisedTrainer(
        max_epochs=trainer_cfg.epochs,
        train_data_loader=loader,
        epoch_length=len(loader),
        optimizer=optimizer,
        loss_function=nn.CrossEntropyLoss(),
        accumulation_steps=trainer_cfg.accumulation_steps,
        **parts.engine_kwargs(training=True),
    )
    quiet(trainer, "trainer")
    return trainer


# ---------------------------------------------------------------------------------------------------
# train
def train(
    config: RunConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    *,
    overwrite: bool = False,
    datasets: Mapping[str, MultimodalDataset] | None = None,
    stats_interval: int = 10,
    log: Callable[[str], None] | None = None,
    handlers: Sequence[Any] = (),
    final_split: str = "test",
) -> RunResult:
    """Train, select and audit one model as ``config`` describes; write the run folder.

    Steps: build the datasets (:func:`~monai_multifair.data.build_datasets`), the encoders (plugin
    registry) and the :class:`~monai_multifair.networks.MultimodalFusionClassifier`; build the training
    method ``config.method`` from the method registry (``erm``, ``multifair``, ``groupdro``, ...: its
    handlers, its training sampler, its state in the checkpoints); train with a MONAI
    ``SupervisedTrainer`` (AdamW or SGD, ``grad_clip``, gradient accumulation, float16 AMP with a grad
    scaler on CUDA / bfloat16 autocast on CPU when ``trainer.amp``); validate with a
    ``SupervisedEvaluator`` and a :class:`~monai_multifair.handlers.FairnessEvaluationHandler` every
    ``trainer.val_interval`` epochs and at the last epoch; keep the best model on
    ``evaluation.selection_metric`` and the last epoch (MONAI ``CheckpointSaver``); predict the test
    split with the best model and write its metrics, predictions and audit report; with
    ``config.postprocessing``, fit it on the validation predictions and report its test decisions too.

    On the CPU a run is a pure function of the config: same seed, same numbers. ``trainer.seed``
    seeds initialisation, dropout and the batch order (a function of ``(seed, epoch)``); the
    synthetic cohort has its own ``data.synthetic.seed``.

    Args:
        config: the resolved run config (:func:`~monai_multifair.config.load_config`).
        run_dir: the run folder (default ``config.output.dir``).
        resume: continue from the folder's last checkpoint (model, optimizer, method state, random
            state, trainer position, selection so far) to ``trainer.epochs``; the config must match
            the folder's ``config.yaml`` except :data:`~monai_multifair.engine.RESUMABLE_KEYS`.
        progress: show a tqdm progress bar on stderr.
        overwrite: replace a previous run's files in ``run_dir`` (otherwise they are an error).
        datasets: ``{"train", "val", "test"}`` :class:`~monai_multifair.data.MultimodalDataset` to use
            instead of building the config's ``data`` section (which then only documents the run).
        stats_interval: record the loss and the method's statistics every this many iterations (and
            at each epoch end); the only host reads of training tensors.
        log: receives one line per epoch (loss, validation metrics).
        handlers: extra ignite/MONAI handlers (objects with ``attach(engine)``) for the trainer, e.g.
            a ``TensorBoardStatsHandler``.
        final_split: the split the selected model is evaluated and audited on at the end: ``"test"``, or
            ``"val"`` for a hyperparameter search, which must leave the test split unseen (``datasets``
            may then hold ``train`` and ``val`` only; no post-processing is applied).

    Returns:
        :class:`RunResult`.

    Raises:
        MultiFairError: bad config values, a run folder that already holds a run (without
            ``resume``/``overwrite``), nothing to resume, or a resumed config that differs.

    Example:
        >>> from monai_multifair.config import load_config
        >>> cfg = load_config("demo-quick", ["method.name=erm"])
        >>> result = train(cfg, "runs/baseline", progress=False)  # doctest: +SKIP
        >>> result.metrics["es_auc"], result.files["report_html"]  # doctest: +SKIP
    """
    started = time.perf_counter()
    if isinstance(stats_interval, bool) or not isinstance(stats_interval, int) or stats_interval < 1:
        raise MultiFairError(f"expected `stats_interval` to be an integer >= 1, got {stats_interval!r}")
    if final_split not in ("test", "val"):
        raise MultiFairError(f"expected `final_split` to be 'test' or 'val', got {final_split!r}")
    run_dir = Path(run_dir if run_dir is not None else config.output.dir)
    config = with_output_dir(config, run_dir)
    files: dict[str, Path] = {"config": run_dir / "config.yaml"}
    say = _messenger(log)
    lock = RunFolderLock(run_dir, "multifair train")

    def prepare_folder() -> tuple[Path | None, list[str]]:  # rank 0 decides; every rank gets the outcome
        if run_dir.exists() and not run_dir.is_dir():
            raise MultiFairError(f"run folder {str(run_dir)!r} is an existing file, expected a folder")
        lock.acquire()
        try:
            found, skipped = open_run_folder(config, run_dir, resume=resume, overwrite=overwrite)
            atomic_write_text(files["config"], config.to_yaml())
        except BaseException:
            lock.release()
            raise
        return found, skipped

    resume_from, skipped = on_rank_zero(prepare_folder)
    try:
        if lock.stale_owner is not None:
            owner = lock.stale_owner
            say(
                f"the run folder's previous owner (pid {owner.get('pid')} on {owner.get('host')}, since "
                f"{owner.get('started')}) ended without releasing it; continuing"
            )
        for line in skipped:
            say(f"resume: skipped {line}")
        if resume_from is not None and skipped:
            say(f"resume: continuing from {resume_from.name}")
        if resume_from is not None and checkpoint_epoch(resume_from) == config.trainer.epochs:
            say(
                f"resume: the run is already complete ({config.trainer.epochs} of {config.trainer.epochs} epochs "
                f"in {resume_from.name}); nothing to train: the best model is evaluated on the {final_split} split "
                "again and the run's results (metrics, predictions, reports, training and validation tables) are "
                "rewritten; raise trainer.epochs to train further"
            )
        return _train_in_folder(
            config, run_dir, resume_from, files, started, progress, datasets, stats_interval, log, handlers,
            final_split,
        )  # fmt: skip
    finally:
        lock.release()


def _messenger(log: Callable[[str], None] | None) -> Callable[[str], None]:
    """``log`` on rank 0, or the engine's logger when there is none."""
    if rank() != 0:
        return lambda message: None
    if log is not None:
        return log
    return logging.getLogger("monai_multifair.engine").warning


def _train_in_folder(
    config: RunConfig,
    run_dir: Path,
    resume_from: Path | None,
    files: dict[str, Path],
    started: float,
    progress: bool,
    datasets: Mapping[str, MultimodalDataset] | None,
    stats_interval: int,
    log: Callable[[str], None] | None,
    handlers: Sequence[Any],
    final_split: str,
) -> RunResult:
    """The run itself, in a folder this process holds (see :func:`train`)."""
    ckpt_dir = run_dir / "checkpoints"
    lead = rank() == 0

    # -- the run's parts and its training method
    parts = build_run_parts(
        config, datasets, splits=SPLIT_NAMES if final_split == "test" else ("train", "val")
    )
    method = config.method.create()
    method.setup(parts.method_context(stats_interval))  # before the random state is restored on resume
    train_loader = parts.loader("train", shuffle=True, weights=method.sampling_weights(), training=True)
    optimizer = build_optimizer(config, parts.network)
    evaluator, best_saver = _validation(parts, ckpt_dir)
    trainer = _trainer(parts, train_loader, optimizer)

    # -- what checkpoints hold
    monitor = TrainingMonitor(stats_interval, prefix=method.metric_prefix)
    validation = ValidationRunner(evaluator, config.trainer.val_interval)
    save_dict: dict[str, Any] = {
        "model": parts.network,
        "optimizer": optimizer,
        "trainer": trainer,
        "monitor": monitor,
        "validation": validation,
        "best_saver": best_saver,
        "rng": RNGState(),
        "method": method,
    }
    if parts.amp:
        save_dict["scaler"] = ScalerState(trainer)

    # -- the trainer's handlers, in order (checkpoints are written by rank 0 only, atomically)
    reporter = ProgressReporter(
        monitor, validation, config.evaluation.selection_metric, progress and lead, log if lead else None
    )
    ordered: list[Any] = []
    if resume_from is not None:
        ordered.append(
            CheckpointLoader(load_path=str(resume_from), load_dict=save_dict, map_location=parts.device)
        )
    ordered.append(EpochShuffle(train_loader))
    if config.trainer.modality_dropout > 0:
        ordered.append(
            ModalityDropout(config.trainer.modality_dropout, config.trainer.seed, PRESENCE_KEY, rank())
        )
    ordered += method.train_handlers()
    if config.trainer.grad_clip is not None:
        ordered.append(GradientClipper(config.trainer.grad_clip, config.trainer.accumulation_steps))
    ordered += [monitor, *handlers, validation]
    ordered += [EpochCheckpointWriter(ckpt_dir, save_dict, _messenger(log)), reporter]
    for handler in ordered:
        handler.attach(trainer)
    try:
        with warnings.catch_warnings():
            # undefined group metrics on small validation splits are NaN by design; the test metrics name them
            warnings.simplefilter("ignore", UndefinedGroupMetricWarning)
            trainer.run()
    finally:
        reporter.close()

    # -- the test split with the best model (written by rank 0, read by every rank)
    barrier()
    check_checkpoint_record(ckpt_dir / BEST_CHECKPOINT)  # written by this run: always has its record
    model_state, _ = load_model_state(ckpt_dir / BEST_CHECKPOINT, parts.device)
    apply_model_state(parts.network, model_state, ckpt_dir / BEST_CHECKPOINT)
    stats, history = pd.DataFrame(monitor.rows), pd.DataFrame(validation.history)
    if lead:
        atomic_write_text(run_dir / "training_stats.csv", stats.to_csv(index=False))
        atomic_write_text(run_dir / "validation.csv", history.to_csv(index=False))
    files.update(
        training_stats=run_dir / "training_stats.csv",
        validation=run_dir / "validation.csv",
        best_checkpoint=ckpt_dir / BEST_CHECKPOINT,
        last_checkpoint=latest_checkpoint(run_dir) or ckpt_dir,
    )
    best_row = next((r for r in validation.history if r["epoch"] == validation.best_epoch), {})
    extra = {
        "best_epoch": validation.best_epoch,
        "epochs": config.trainer.epochs,
        "selection_metric": config.evaluation.selection_metric,
        "validation": {k: v for k, v in best_row.items() if k != "epoch"},
        "seed": config.trainer.seed,
        "device": str(parts.device),
        "method": _method_summary(config, method),
    }
    metrics, frame, report = write_split_results(
        parts,
        run_dir,
        final_split,
        title=f"Fairness audit: {method.describe()}, run {run_dir.name}",
        extra=extra,
        training_stats=stats if method.audit_statistics else None,
        files=files,
    )
    result = RunResult(run_dir, config, metrics, frame, validation.best_epoch, stats, history, report, files)
    result = _stamp(result, started) if lead else result
    barrier()  # every rank returns once rank 0 has written the run folder
    return result


# ---------------------------------------------------------------------------------------------------
# evaluate
def evaluate(
    config: RunConfig,
    checkpoint: str | Path,
    run_dir: str | Path | None = None,
    *,
    split: str = "test",
    datasets: Mapping[str, MultimodalDataset] | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Evaluate a checkpoint on a split (default the test split); write metrics, predictions, report.

    The network is built from ``config`` (which must describe the checkpoint's architecture) and
    loaded from ``checkpoint``: a ``best.pt`` / ``checkpoint_epoch=N.pt`` of a run folder (its
    ``model`` entry) or a bare model state dict. A ``postprocessing`` section is fitted on the
    validation split and applied when the split is ``test``.

    Args:
        config: the run config the checkpoint was trained with (e.g. the run's ``config.yaml``).
        checkpoint: the checkpoint file.
        run_dir: the output folder (default: ``evaluation/`` next to the checkpoint's run folder).
        split: ``"test"``, ``"val"`` or ``"train"``.
        datasets: splits to use instead of building the config's ``data`` section.
        overwrite: replace the files of an earlier evaluation in ``run_dir`` (never a training run's:
            an evaluation never writes into a training run's own folder).

    Returns:
        :class:`RunResult` (``training_stats`` and ``validation`` are ``None``).

    Raises:
        MultiFairError: a missing or unreadable checkpoint, one that does not match its record
            ``<checkpoint>.json`` (size and SHA-256; a checkpoint without one is loaded with a note in
            ``metrics["notes"]``), one that does not fit the config's network,
            an unknown split, a training run's folder as ``run_dir``, earlier results without
            ``overwrite``, or a folder another process is writing to.
    """
    started = time.perf_counter()
    if split not in SPLIT_NAMES:
        raise MultiFairError(
            f"expected `split` to be one of {', '.join(SPLIT_NAMES)}, got {split!r}{close_match_hint(split, SPLIT_NAMES)}"
        )
    checkpoint = Path(checkpoint)
    if run_dir is None:
        base = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
        run_dir = base / "evaluation"
    run_dir = Path(run_dir)
    on_rank_zero(lambda: check_evaluation_folder(run_dir, overwrite=overwrite))
    with raised_on_every_rank():  # the same file for every rank
        record_note = check_checkpoint_record(checkpoint)
    parts = build_run_parts(config, datasets, load_weights=False)
    model_state, selection = load_model_state(checkpoint, parts.device)
    apply_model_state(parts.network, model_state, checkpoint)
    config = with_output_dir(config, run_dir)
    parts.config = config
    files: dict[str, Path] = {"config": run_dir / "config.yaml"}

    lock = RunFolderLock(run_dir, "multifair evaluate")

    def prepare_folder() -> None:
        lock.acquire()
        try:
            check_evaluation_folder(run_dir, overwrite=overwrite)  # again, now that the folder is ours
            remove_stale_temporaries(run_dir)
            atomic_write_text(files["config"], config.to_yaml())
        except BaseException:
            lock.release()
            raise

    on_rank_zero(prepare_folder)
    try:
        notes = [record_note] if record_note else []
        return _evaluate_in_folder(
            parts, config, checkpoint, selection, run_dir, split, files, started, notes
        )
    finally:
        lock.release()


def _evaluate_in_folder(
    parts: RunParts,
    config: RunConfig,
    checkpoint: Path,
    selection: Any,
    run_dir: Path,
    split: str,
    files: dict[str, Path],
    started: float,
    notes: Sequence[str] = (),
) -> RunResult:
    """Predict, measure and write the evaluation, in a folder this process holds (see :func:`evaluate`)."""
    lead = rank() == 0
    device = parts.device
    best_epoch = int(selection["epoch"]) if isinstance(selection, Mapping) and "epoch" in selection else None
    extra: dict[str, Any] = {"checkpoint": str(checkpoint), "best_epoch": best_epoch, "device": str(device)}
    if isinstance(selection, Mapping):
        extra["validation"] = dict(selection.get("validation", {}))
        extra["selection_metric"] = selection.get("metric")
    title = f"Fairness audit: {checkpoint.name} on the {split} split"
    metrics, frame, report = write_split_results(
        parts, run_dir, split, title=title, extra=extra, training_stats=None, files=files, notes=notes
    )
    result = RunResult(run_dir, config, metrics, frame, best_epoch, report=report, files=files)
    result = _stamp(result, started) if lead else result
    barrier()
    return result

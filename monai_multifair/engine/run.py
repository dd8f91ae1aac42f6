"""``train`` and ``evaluate``: a whole run from a :class:`~monai_multifair.config.RunConfig`.

A run folder holds::

    config.yaml            the resolved config (what ran)
    checkpoints/           checkpoint_epoch=N.pt (the last epoch: everything needed to resume) and best.pt
    metrics.json           test metrics of the best model (AUC, ES-AUC, worst-group AUC, DPD, DEOdds, group AUC)
    predictions.csv        one row per test sample: id, label, score, group, group_label, attributes
    training_stats.csv     loss and MultiFair statistics every `stats_interval` iterations
    validation.csv         validation metrics per validated epoch
    report.html/.md/.json  the fairness audit (output.report_formats)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch import nn

from monai_multifair.config import RunConfig, load_config
from monai_multifair.data import SPLIT_NAMES, MultimodalDataset, build_datasets
from monai_multifair.engine.builders import (
    amp_settings,
    build_collate,
    build_network,
    build_optimizer,
    group_names,
    resolve_device,
)
from monai_multifair.engine.handlers import (
    EpochShuffle,
    GradientClipper,
    LastCheckpointPruner,
    PredictionCollector,
    ProgressReporter,
    RNGState,
    SaverState,
    ScalerState,
    SelectionRecord,
    SelectionScore,
    TrainingMonitor,
    ValidationRunner,
    checkpoint_epoch,
)
from monai_multifair.engine.loaders import make_loader
from monai_multifair.engine.outputs import (
    HEADLINE_METRICS,
    REPORT_FILES,
    audit_report,
    json_ready,
    predictions_frame,
    test_metrics,
    write_json,
)
from monai_multifair.errors import MultiFairError
from monai_multifair.handlers import FairnessEvaluationHandler, MultiFairHandler, MultimodalPrepareBatch
from monai_multifair.metrics import UndefinedGroupMetricWarning
from monai_multifair.report import AuditReport

__all__ = ["RESUMABLE_KEYS", "RUN_FILES", "RunResult", "evaluate", "latest_checkpoint", "train"]

#: Files a run writes in its folder (besides ``checkpoints/``).
RUN_FILES: tuple[str, ...] = (
    "config.yaml",
    "metrics.json",
    "predictions.csv",
    "training_stats.csv",
    "validation.csv",
    *REPORT_FILES.values(),
)
#: Config keys that may differ when a run is resumed (they do not change what was trained so far).
RESUMABLE_KEYS: tuple[str, ...] = (
    "trainer.epochs",
    "trainer.num_workers",
    "trainer.device",
    "evaluation.n_boot",
    "evaluation.ci_level",
    "evaluation.random_state",
    "output",
)
BEST_CHECKPOINT = "best.pt"
_LOGGER = "monai_multifair.engine"


@dataclass
class RunResult:
    """What :func:`train` or :func:`evaluate` produced.

    Attributes:
        run_dir: the run folder.
        config: the resolved config.
        metrics: the ``metrics.json`` content: ``auc``, ``es_auc``, ``worst_group_auc``, ``dpd``,
            ``deodds`` (NaN where undefined), ``group_auc``, ``n``, ``group_counts``, ``best_epoch``,
            ``validation`` (the best epoch's validation metrics), ``notes``, ...
        predictions: the ``predictions.csv`` frame.
        best_epoch: epoch of the selected model (``None`` if unknown, e.g. a bare state dict).
        training_stats: per-interval loss and MultiFair statistics (``None`` for ``evaluate``).
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


# ---------------------------------------------------------------------------------------------------
# helpers
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# the synthetic cohort of the last few data sections (generating it takes about a second)
_SYNTHETIC_CACHE: dict[str, dict[str, MultimodalDataset]] = {}
_SYNTHETIC_CACHE_SIZE = 2


def _datasets(
    config: RunConfig, datasets: Mapping[str, MultimodalDataset] | None
) -> dict[str, MultimodalDataset]:
    """The config's splits (the synthetic cohort is cached in-process), or the ones given."""
    if datasets is None:
        if config.data.source != "synthetic":
            return build_datasets(config)
        key = json.dumps(json_ready(config.data.to_section()), sort_keys=True)
        if key not in _SYNTHETIC_CACHE:
            while len(_SYNTHETIC_CACHE) >= _SYNTHETIC_CACHE_SIZE:
                _SYNTHETIC_CACHE.pop(next(iter(_SYNTHETIC_CACHE)))
            _SYNTHETIC_CACHE[key] = build_datasets(config)
        return dict(_SYNTHETIC_CACHE[key])
    missing = [s for s in SPLIT_NAMES if s not in datasets]
    if missing:
        raise MultiFairError(f"expected `datasets` to have the splits {list(SPLIT_NAMES)}, missing {missing}")
    for split in SPLIT_NAMES:
        dataset = datasets[split]
        if not isinstance(dataset, MultimodalDataset):
            raise MultiFairError(
                f"expected `datasets[{split!r}]` to be a MultimodalDataset, got {type(dataset).__name__}"
            )
        absent = [m for m in config.encoders if m not in dataset.modalities]
        if absent:
            raise MultiFairError(
                f"`datasets[{split!r}]` lacks modality {absent[0]!r} of the config's encoders "
                f"(it has {list(dataset.modalities)})"
            )
    return dict(datasets)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The ``checkpoints/checkpoint_epoch=N.pt`` of a run folder with the largest ``N`` (``None``: none)."""
    folder = Path(run_dir) / "checkpoints"
    found = (
        [(checkpoint_epoch(p), p) for p in folder.glob("checkpoint_epoch=*.pt")] if folder.is_dir() else []
    )
    found = [(e, p) for e, p in found if e is not None]
    return max(found)[1] if found else None


def _flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and key not in ("encoders",) and value:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _check_resume(config: RunConfig, run_dir: Path, last: Path) -> None:
    """The config of a resumed run must equal the saved one, except :data:`RESUMABLE_KEYS`."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise MultiFairError(f"cannot resume {str(run_dir)!r}: its config.yaml is missing")
    saved = _flatten(load_config(saved_path, check_encoders=False).to_dict())
    current = _flatten(config.to_dict())
    allowed = tuple(RESUMABLE_KEYS)
    differing = sorted(
        key
        for key in set(saved) | set(current)
        if saved.get(key) != current.get(key)
        and not any(key == a or key.startswith(f"{a}.") for a in allowed)
    )
    if differing:
        shown = ", ".join(f"`{k}` ({saved.get(k)!r} -> {current.get(k)!r})" for k in differing[:5])
        raise MultiFairError(
            f"cannot resume {str(run_dir)!r}: the config differs from the run's config.yaml in {shown}"
            + (f" and {len(differing) - 5} more" if len(differing) > 5 else "")
            + f"; only {', '.join(RESUMABLE_KEYS)} may change (or start a new run with another --output)"
        )
    done = checkpoint_epoch(last) or 0
    if done > config.trainer.epochs:
        raise MultiFairError(
            f"config key `trainer.epochs`: the run already trained {done} epochs ({last.name}), got "
            f"{config.trainer.epochs}; set it to at least {done}"
        )


def _clear_run(run_dir: Path) -> None:
    """Remove the files a previous run wrote (only those: other files in the folder stay)."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    folder = run_dir / "checkpoints"
    if folder.is_dir():
        for path in folder.glob("checkpoint_epoch=*.pt"):
            path.unlink()
        (folder / BEST_CHECKPOINT).unlink(missing_ok=True)


def _quiet(engine: Any, name: str) -> None:
    """Route an engine's log records to the package logger (silent unless the user configures logging)."""
    engine.logger = logging.getLogger(f"{_LOGGER}.{name}")


def _load_model_state(path: Path, device: torch.device) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(model state dict, selection record or None)`` of a checkpoint file."""
    if not path.is_file():
        raise MultiFairError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        content = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise MultiFairError(
            f"cannot read checkpoint {str(path)!r}: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(content, Mapping):
        raise MultiFairError(f"checkpoint {str(path)!r} holds a {type(content).__name__}, expected a dict")
    if "model" in content and isinstance(content["model"], Mapping):
        return dict(content["model"]), content.get("selection")
    if content and all(isinstance(v, torch.Tensor) for v in content.values()):
        return dict(content), None
    raise MultiFairError(
        f"checkpoint {str(path)!r} has no `model` entry (keys: {sorted(map(str, content))[:8]}); expected a "
        "checkpoint written by `multifair train` or a model state dict"
    )


def _apply_model_state(network: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        detail = str(error).split("\n\t")
        raise MultiFairError(
            f"checkpoint {str(path)!r} does not fit the network this config builds: "
            + "; ".join(d.strip() for d in detail[1:4] if d.strip())
            + " (was it trained with another config?)"
        ) from None


@dataclass
class _Parts:
    """The objects one run is made of."""

    device: torch.device
    datasets: dict[str, MultimodalDataset]
    network: nn.Module
    collate: Any
    prepare: MultimodalPrepareBatch
    amp: bool
    inferer: Any

    def engine_kwargs(self) -> dict[str, Any]:
        """The arguments every MONAI engine of the run shares."""
        return {
            "device": self.device,
            "network": self.network,
            "prepare_batch": self.prepare,
            "inferer": self.inferer,
            "amp": self.amp,
            "decollate": False,
        }


def _build(config: RunConfig, datasets: Mapping[str, MultimodalDataset] | None) -> _Parts:
    device = resolve_device(config.trainer.device)
    splits = _datasets(config, datasets)
    _seed_everything(config.trainer.seed)
    network = build_network(config, splits["train"]).to(device)
    amp, inferer = amp_settings(config, device)
    prepare = MultimodalPrepareBatch(
        list(network.modality_names),
        label_key="label",
        group_key="group" if config.fusion.demographic_token else None,
    )
    return _Parts(device, splits, network, build_collate(network, splits["train"]), prepare, amp, inferer)


def _predict(
    parts: _Parts, config: RunConfig, split: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    loader = make_loader(
        parts.datasets[split],
        parts.collate,
        batch_size=config.trainer.batch_size,
        shuffle=False,
        seed=config.trainer.seed,
        num_workers=config.trainer.num_workers,
    )
    collector = PredictionCollector()
    evaluator = SupervisedEvaluator(
        val_data_loader=loader, epoch_length=len(loader), val_handlers=[collector], **parts.engine_kwargs()
    )
    _quiet(evaluator, "predict")
    evaluator.run()
    return collector.arrays()


def _finish(
    config: RunConfig,
    parts: _Parts,
    run_dir: Path,
    split: str,
    *,
    title: str,
    extra: Mapping[str, Any],
    training_stats: pd.DataFrame | None,
    files: dict[str, Path],
) -> RunResult:
    """Predict ``split`` with the network as it is, and write predictions, metrics and reports."""
    dataset = parts.datasets[split]
    probabilities, labels, groups, ids = _predict(parts, config, split)
    frame = predictions_frame(dataset, probabilities, labels, groups, ids)
    metrics: dict[str, Any] = {"split": split, **test_metrics(config, dataset, probabilities, labels, groups)}
    metrics.update(extra)
    metrics.update(
        {
            "threshold": config.evaluation.threshold,
            "alpha": config.evaluation.alpha,
            "modulation": {
                "enabled": config.modulation.enabled,
                "preset": config.modulation.settings.preset if config.modulation.enabled else None,
            },
        }
    )
    if config.output.save_predictions:
        frame.to_csv(run_dir / "predictions.csv", index=False)
        files["predictions"] = run_dir / "predictions.csv"
    report = None
    if config.output.report_formats:
        stats = training_stats if config.modulation.enabled and training_stats is not None else None
        if stats is not None and len(stats) == 0:
            stats = None
        report, notes = audit_report(config, frame, dataset, title=title, training_stats=stats)
        metrics["notes"] = list(dict.fromkeys([*metrics["notes"], *notes]))
        writers = {"html": report.to_html, "markdown": report.to_markdown, "json": report.to_json}
        for fmt in dict.fromkeys(config.output.report_formats):
            path = run_dir / REPORT_FILES[fmt]
            writers[fmt](path)
            files[f"report_{fmt}"] = path
    files["metrics"] = write_json(metrics, run_dir / "metrics.json")
    return RunResult(
        run_dir=run_dir, config=config, metrics=metrics, predictions=frame, report=report, files=files
    )


def _stamp(result: RunResult, started: float) -> RunResult:
    """Record the wall time since ``started`` in the result and its ``metrics.json``."""
    result.wall_time_s = time.perf_counter() - started
    result.metrics["wall_time_s"] = result.wall_time_s
    write_json(result.metrics, result.files["metrics"])
    return result


def _title(config: RunConfig, run_dir: Path) -> str:
    if config.modulation.enabled:
        what = f"MultiFair ({config.modulation.settings.preset} preset)"
    else:
        what = "plain fusion baseline"
    return f"Fairness audit: {what}, run {run_dir.name}"


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
) -> RunResult:
    """Train, select and audit one model as ``config`` describes; write the run folder.

    Steps: build the datasets (:func:`~monai_multifair.data.build_datasets`), the encoders (plugin
    registry) and the :class:`~monai_multifair.networks.MultimodalFusionClassifier`; train with a MONAI
    ``SupervisedTrainer`` (AdamW or SGD, ``grad_clip``, gradient accumulation, float16 AMP with a grad
    scaler on CUDA / bfloat16 autocast on CPU when ``trainer.amp``) with a
    :class:`~monai_multifair.handlers.MultiFairHandler` when ``modulation.enabled`` (any preset,
    ``reference`` included); validate with a ``SupervisedEvaluator`` and a
    :class:`~monai_multifair.handlers.FairnessEvaluationHandler` every ``trainer.val_interval`` epochs
    and at the last epoch; keep the best model on ``evaluation.selection_metric`` and the last epoch
    (MONAI ``CheckpointSaver``); predict the test split with the best model and write its metrics,
    predictions and audit report (with the modulation statistics collected during training).

    On the CPU a run is a pure function of the config: same seed, same numbers. ``trainer.seed``
    seeds initialisation, dropout and the batch order (a permutation per ``(seed, epoch)``); the
    synthetic cohort has its own ``data.synthetic.seed``.

    Args:
        config: the resolved run config (:func:`~monai_multifair.config.load_config`).
        run_dir: the run folder (default ``config.output.dir``).
        resume: continue from the folder's last checkpoint (model, optimizer, MultiFair state, random
            state, trainer position, selection so far) to ``trainer.epochs``; the config must match
            the folder's ``config.yaml`` except :data:`RESUMABLE_KEYS`.
        progress: show a tqdm progress bar on stderr.
        overwrite: replace a previous run's files in ``run_dir`` (otherwise they are an error).
        datasets: ``{"train", "val", "test"}`` :class:`~monai_multifair.data.MultimodalDataset` to use
            instead of building the config's ``data`` section (which then only documents the run).
        stats_interval: record the loss and the MultiFair statistics every this many iterations (and
            at each epoch end); the only host reads of training tensors.
        log: receives one line per epoch (loss, validation metrics).
        handlers: extra ignite/MONAI handlers (objects with ``attach(engine)``) for the trainer, e.g.
            a ``TensorBoardStatsHandler``.

    Returns:
        :class:`RunResult`.

    Raises:
        MultiFairError: bad config values, a run folder that already holds a run (without
            ``resume``/``overwrite``), nothing to resume, or a resumed config that differs.

    Example:
        >>> from monai_multifair.config import load_config
        >>> cfg = load_config("demo-quick", ["modulation.enabled=false"])
        >>> result = train(cfg, "runs/baseline", progress=False)  # doctest: +SKIP
        >>> result.metrics["es_auc"], result.files["report_html"]  # doctest: +SKIP
    """
    started = time.perf_counter()
    if isinstance(stats_interval, bool) or not isinstance(stats_interval, int) or stats_interval < 1:
        raise MultiFairError(f"expected `stats_interval` to be an integer >= 1, got {stats_interval!r}")
    if resume and overwrite:
        raise MultiFairError("`resume` and `overwrite` exclude each other: continue the run or start it over")
    run_dir = Path(run_dir if run_dir is not None else config.output.dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise MultiFairError(f"run folder {str(run_dir)!r} is an existing file, expected a folder")
    ckpt_dir = run_dir / "checkpoints"
    last = latest_checkpoint(run_dir)
    if resume:
        if last is None:
            raise MultiFairError(
                f"nothing to resume in {str(ckpt_dir)!r}: no checkpoint_epoch=N.pt; start the run without --resume"
            )
        _check_resume(config, run_dir, last)
    elif last is not None or (ckpt_dir / BEST_CHECKPOINT).exists():
        if not overwrite:
            raise MultiFairError(
                f"run folder {str(run_dir)!r} already holds a run ({(last or ckpt_dir / BEST_CHECKPOINT).name}); "
                "continue it with --resume, start it over with --overwrite, or choose another --output"
            )
        _clear_run(run_dir)
    elif overwrite:
        _clear_run(run_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    config = _replace_output(config, run_dir)
    files: dict[str, Path] = {"config": run_dir / "config.yaml"}
    config.to_yaml(files["config"])

    parts = _build(config, datasets)
    trainer_cfg, evaluation = config.trainer, config.evaluation
    train_set = parts.datasets["train"]
    names = group_names(train_set.group_labels)
    loaders = {
        split: make_loader(
            parts.datasets[split],
            parts.collate,
            batch_size=trainer_cfg.batch_size,
            shuffle=split == "train",
            seed=trainer_cfg.seed,
            num_workers=trainer_cfg.num_workers,
        )
        for split in ("train", "val")
    }
    optimizer = build_optimizer(config, parts.network.parameters())

    # -- validation: fairness metrics, selection score, best model
    fairness = FairnessEvaluationHandler(
        group_key="group",
        label_key="label",
        num_groups=train_set.num_groups,
        group_names=names,
        threshold=evaluation.threshold,
        alpha=evaluation.alpha,
    )
    best_saver = CheckpointSaver(
        save_dir=str(ckpt_dir),
        save_dict={"model": parts.network},
        save_key_metric=True,
        key_metric_name=SelectionScore.KEY,
        key_metric_filename=BEST_CHECKPOINT,
    )
    evaluator = SupervisedEvaluator(
        val_data_loader=loaders["val"], epoch_length=len(loaders["val"]), **parts.engine_kwargs()
    )
    _quiet(evaluator, "evaluator")
    best_saver.save_dict["selection"] = SelectionRecord(evaluator, evaluation.selection_metric)
    for handler in (fairness, SelectionScore(evaluation.selection_metric), best_saver):
        handler.attach(evaluator)

    # -- training
    trainer = SupervisedTrainer(
        max_epochs=trainer_cfg.epochs,
        train_data_loader=loaders["train"],
        epoch_length=len(loaders["train"]),
        optimizer=optimizer,
        loss_function=nn.CrossEntropyLoss(),
        accumulation_steps=trainer_cfg.accumulation_steps,
        **parts.engine_kwargs(),
    )
    _quiet(trainer, "trainer")
    multifair = None
    if config.modulation.enabled:
        multifair = MultiFairHandler(
            num_classes=train_set.num_classes,
            num_groups=train_set.num_groups,
            group_key="group",
            label_key="label",
            config=config.modulation.settings,
            stats_interval=stats_interval,
            group_names=names,
        )
        multifair.build(parts.network, parts.device)  # before the random state is restored on resume
    monitor = TrainingMonitor(stats_interval)
    validation = ValidationRunner(evaluator, trainer_cfg.val_interval)
    save_dict: dict[str, Any] = {
        "model": parts.network,
        "optimizer": optimizer,
        "trainer": trainer,
        "monitor": monitor,
        "validation": validation,
        "best_saver": SaverState(best_saver),
        "rng": RNGState(),
    }
    if multifair is not None:
        save_dict["multifair"] = multifair
    if parts.amp:
        save_dict["scaler"] = ScalerState(trainer)
    reporter = ProgressReporter(monitor, validation, evaluation.selection_metric, progress, log)
    ordered: list[Any] = []
    if resume:
        ordered.append(CheckpointLoader(load_path=str(last), load_dict=save_dict, map_location=parts.device))
    ordered.append(EpochShuffle(loaders["train"]))
    if multifair is not None:
        ordered.append(multifair)
    if trainer_cfg.grad_clip is not None:
        ordered.append(GradientClipper(trainer_cfg.grad_clip, trainer_cfg.accumulation_steps))
    ordered += [monitor, *handlers, validation]
    ordered.append(CheckpointSaver(save_dir=str(ckpt_dir), save_dict=save_dict, save_interval=1, n_saved=1))
    ordered += [LastCheckpointPruner(ckpt_dir), reporter]
    for handler in ordered:
        handler.attach(trainer)
    try:
        with warnings.catch_warnings():
            # undefined group metrics on small validation splits are NaN by design; the test metrics name them
            warnings.simplefilter("ignore", UndefinedGroupMetricWarning)
            trainer.run()
    finally:
        reporter.close()

    # -- test split with the best model
    model_state, _ = _load_model_state(ckpt_dir / BEST_CHECKPOINT, parts.device)
    _apply_model_state(parts.network, model_state, ckpt_dir / BEST_CHECKPOINT)
    stats = pd.DataFrame(monitor.rows)
    history = pd.DataFrame(validation.history)
    stats.to_csv(run_dir / "training_stats.csv", index=False)
    history.to_csv(run_dir / "validation.csv", index=False)
    files["training_stats"] = run_dir / "training_stats.csv"
    files["validation"] = run_dir / "validation.csv"
    files["best_checkpoint"] = ckpt_dir / BEST_CHECKPOINT
    files["last_checkpoint"] = latest_checkpoint(run_dir) or ckpt_dir
    best_row = next((r for r in validation.history if r["epoch"] == validation.best_epoch), {})
    extra = {
        "best_epoch": validation.best_epoch,
        "epochs": trainer_cfg.epochs,
        "selection_metric": evaluation.selection_metric,
        "validation": {k: v for k, v in best_row.items() if k != "epoch"},
        "seed": trainer_cfg.seed,
        "device": str(parts.device),
    }
    result = _finish(
        config,
        parts,
        run_dir,
        "test",
        title=_title(config, run_dir),
        extra=extra,
        training_stats=stats,
        files=files,
    )
    result.best_epoch, result.training_stats, result.validation = validation.best_epoch, stats, history
    return _stamp(result, started)


# ---------------------------------------------------------------------------------------------------
# evaluate
def evaluate(
    config: RunConfig,
    checkpoint: str | Path,
    run_dir: str | Path | None = None,
    *,
    split: str = "test",
    datasets: Mapping[str, MultimodalDataset] | None = None,
) -> RunResult:
    """Evaluate a checkpoint on a split (default the test split); write metrics, predictions, report.

    The network is built from ``config`` (which must describe the checkpoint's architecture) and
    loaded from ``checkpoint``: a ``best.pt`` / ``checkpoint_epoch=N.pt`` of a run folder (its
    ``model`` entry) or a bare model state dict.

    Args:
        config: the run config the checkpoint was trained with (e.g. the run's ``config.yaml``).
        checkpoint: the checkpoint file.
        run_dir: the output folder (default: ``evaluation/`` next to the checkpoint's run folder).
        split: ``"test"``, ``"val"`` or ``"train"``.
        datasets: splits to use instead of building the config's ``data`` section.

    Returns:
        :class:`RunResult` (``training_stats`` and ``validation`` are ``None``).

    Raises:
        MultiFairError: a missing or unreadable checkpoint, one that does not fit the config's network,
            or an unknown split.
    """
    started = time.perf_counter()
    if split not in SPLIT_NAMES:
        from monai_multifair.errors import close_match_hint

        raise MultiFairError(
            f"expected `split` to be one of {', '.join(SPLIT_NAMES)}, got {split!r}{close_match_hint(split, SPLIT_NAMES)}"
        )
    checkpoint = Path(checkpoint)
    if run_dir is None:
        base = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
        run_dir = base / "evaluation"
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise MultiFairError(f"output folder {str(run_dir)!r} is an existing file, expected a folder")
    device = resolve_device(config.trainer.device)
    model_state, selection = _load_model_state(checkpoint, device)
    parts = _build(config, datasets)
    _apply_model_state(parts.network, model_state, checkpoint)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _replace_output(config, run_dir)
    files: dict[str, Path] = {"config": run_dir / "config.yaml"}
    config.to_yaml(files["config"])
    best_epoch = int(selection["epoch"]) if isinstance(selection, Mapping) and "epoch" in selection else None
    extra = {"checkpoint": str(checkpoint), "best_epoch": best_epoch, "device": str(device)}
    if isinstance(selection, Mapping):
        extra["validation"] = dict(selection.get("validation", {}))
        extra["selection_metric"] = selection.get("metric")
    title = f"Fairness audit: {checkpoint.name} on the {split} split"
    result = _finish(
        config, parts, run_dir, split, title=title, extra=extra, training_stats=None, files=files
    )
    result.best_epoch = best_epoch
    return _stamp(result, started)


def _replace_output(config: RunConfig, run_dir: Path) -> RunConfig:
    """``config`` with ``output.dir`` set to ``run_dir`` (so config.yaml names the folder it is in)."""
    return dataclasses.replace(config, output=dataclasses.replace(config.output, dir=str(run_dir)))

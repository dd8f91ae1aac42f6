"""The runs of a comparison: their configs, their data, and the worker that trains one with the engine.

A task is a plain dict (it crosses process boundaries): the phase (``"tune"`` or ``"final"``), the data
set, the arm, the seed, the resolved run config and the run folder. :func:`execute` trains it with
:func:`monai_multifair.engine.train` and returns the store row. A tuning run receives the ``train``
and ``val`` splits only and ends on validation (``final_split="val"``): it never sees the test split.

Seeds: tuning runs use seed 0. Final run ``k`` (0-based) of a ``"seeds"`` data set uses seed ``k + 1``
for training and, when the data source has a ``seed`` option, for the data (a new synthetic cohort, a
new train/val draw of a table or a re-split manifest); of a ``"cv"`` data set with ``K`` folds it is
fold ``k mod K`` of repetition ``1 + k div K`` (the fold assignment's seed), trained with seed ``k + 1``;
of a ``"holdout"`` data set it is a new stratified hold-out (test and validation rows) drawn with seed
``k + 1``. ``"cv"`` and ``"holdout"`` need a data source whose rows can be re-split (its spec's
``split`` is ``"rows"``: the table sources, the manifest, or a plugin's); they set its
:class:`~monai_multifair.data.TableSplit` section. Tuning runs use the split of seed 0 and never see its
test rows.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_multifair.config import RunConfig, load_config
from monai_multifair.config.loader import apply_overrides, load_raw
from monai_multifair.core.distributed import rank
from monai_multifair.data import MultimodalDataset, TableSplit, build_datasets
from monai_multifair.engine import train
from monai_multifair.engine.outputs import HEADLINE_METRICS, json_ready
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import list_data_sources

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "EpochTimer",
    "cpu_seconds",
    "dataset_document",
    "execute",
    "run_document",
    "seed_settings",
    "split_protocol",
    "versions",
]


class EpochTimer:
    """Wall and CPU seconds of each training epoch: from the trainer's ``EPOCH_STARTED`` to its
    ``EPOCH_COMPLETED``, before validation (``engine.train`` attaches extra handlers ahead of its
    validation runner). CPU time is :func:`cpu_seconds`: this process's threads and its finished child
    processes (loader workers): unlike wall time, it hardly grows when other programs load the machine."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._start = 0.0
        self._cpu_start = 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        self._start = time.perf_counter()
        self._cpu_start = cpu_seconds()

    def _completed(self, engine: Engine) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.cpu_seconds.append(cpu_seconds() - self._cpu_start)


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process, all its threads, and its child processes
    that have ended (``resource.getrusage``; on platforms without it, this process only)."""
    try:
        import resource
    except ImportError:  # Windows: no resource module
        return time.process_time()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def versions() -> dict[str, str]:
    """Versions of what produced a row: Python, torch, MONAI, Optuna, this package."""
    import monai
    import optuna

    from monai_multifair import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "optuna": optuna.__version__,
        "monai_multifair": __version__,
        "machine": f"{platform.system()} {platform.machine()}",
    }


def dataset_document(entry: Any, quick: bool) -> dict[str, Any]:
    """The run-config document of a data set (a suite entry's, or a user config with its overrides)."""
    if entry.suite is not None:
        document = entry.suite.document(quick)
    else:
        document = load_raw(entry.config)
    return apply_overrides(document, list(entry.overrides))


def seed_settings(entry: Any, phase: str, index: int) -> dict[str, Any]:
    """``{"seed", "fold", "repeat"}`` of run ``index`` (tuning: 0) of a data set (module docstring)."""
    if phase == "tune":
        return {
            "seed": 0,
            "fold": 0 if entry.protocol == "cv" else None,
            "repeat": 0 if entry.protocol == "cv" else None,
        }
    if entry.protocol == "cv":
        return {"seed": index + 1, "fold": index % entry.folds, "repeat": 1 + index // entry.folds}
    return {"seed": index + 1, "fold": None, "repeat": None}


def run_document(
    document: Mapping[str, Any],
    method_name: str,
    options: Mapping[str, Any],
    settings: Mapping[str, Any],
    entry: Any,
) -> RunConfig:
    """The resolved run config of one run: the data set's document, the method, the seeds."""
    overrides = [
        f"method.name={method_name}",
        f"method.options={json.dumps(json_ready(dict(options)))}",
        f"trainer.seed={int(settings['seed'])}",
    ]
    base = load_config(document, overrides[:1])
    overrides += _split_overrides(entry, base, settings)
    return load_config(document, overrides)


def _split_prefix(entry: Any, config: RunConfig) -> str | None:
    """``data.<source>[.<section>]``, the key of the source's :class:`~monai_multifair.data.TableSplit`
    settings, or ``None`` for a source whose rows cannot be re-split (an error under cv/holdout)."""
    data = config.data
    spec = data.source_spec()
    if spec.split != "rows":
        if entry.protocol in ("cv", "holdout"):
            able = [s.name for s in list_data_sources() if s.split == "rows"]
            raise MultiFairError(
                f"data set {entry.name!r}: protocol {entry.protocol!r} re-splits the rows, but data.source "
                f"{data.source!r} cannot be re-split (its splits are {spec.split}); sources that can: "
                f"{', '.join(able)}"
            )
        return None
    return f"data.{data.source}" + (f".{spec.split_section}" if spec.split_section else "")


def _split_section(config: RunConfig) -> Any:
    """The TableSplit settings of a re-splittable source, or ``None`` (the manifest without ``split``)."""
    spec = config.data.source_spec()
    options = config.data.options
    return getattr(options, spec.split_section) if spec.split_section else options


def _split_overrides(entry: Any, config: RunConfig, settings: Mapping[str, Any]) -> list[str]:
    """The ``data.*`` overrides of one run's data: its fold, its hold-out draw or its generated data."""
    prefix = _split_prefix(entry, config)
    source = config.data.source
    if entry.protocol == "cv":
        return [
            f"{prefix}.folds={entry.folds}",
            f"{prefix}.fold={int(settings['fold'])}",
            f"{prefix}.seed={int(settings['repeat'])}",
        ]
    if entry.protocol == "holdout":
        seed = int(settings["seed"])
        return [f"{prefix}.folds=0", f"{prefix}.seed={seed}", f"{prefix}.test_seed={seed}"]
    if config.data.source_spec().split == "generated":  # a new cohort per seed
        return [f"data.{source}.seed={int(settings['seed'])}"]
    if (
        prefix is not None and _split_section(config) is not None
    ):  # a table's or re-split manifest's train/val
        return [f"{prefix}.seed={int(settings['seed'])}"]
    return []


def split_protocol(entry: Any, quick: bool = False) -> dict[str, Any]:
    """What varies across the final runs of a data set, and the interval that fits it.

    Returns:
        ``{"varies": sentence, "ratio": n_test / n_train or None}``: ``ratio`` is the corrected
        resampled t interval's (Nadeau & Bengio 2003) for ``"cv"`` (``1 / (K - 1)``) and ``"holdout"``
        (from the split's fractions); ``None`` means runs share their test rows (Student-t over seeds).
    """
    config = load_config(dataset_document(entry, quick))
    spec = config.data.source_spec()
    if entry.protocol == "cv":
        return {
            "varies": f"the data split varies: {entry.folds}-fold cross-validation repeated, each run one test fold",
            "ratio": 1.0 / (entry.folds - 1),
        }
    if entry.protocol == "holdout":
        split = _split_section(config)
        split = TableSplit() if split is None else split  # the section run_document will create
        n_train = (1 - split.test_fraction) * (1 - split.val_fraction)
        return {
            "varies": f"the data split varies: each run a new stratified hold-out (test {split.test_fraction:g}, "
            f"val {split.val_fraction:g} of the rest)",
            "ratio": split.test_fraction / n_train,
        }
    if spec.split == "generated":
        varies = "the training seed and the data: each run generates a new cohort (its own test split)"
        return {"varies": varies, "ratio": None}
    redrawn = spec.split == "rows" and _split_section(config) is not None
    if redrawn:
        varies = (
            "the training seed and the train/validation draw; the test split is fixed, so the results hold for "
            "this test split only"
        )
    else:
        varies = (
            "the training seed only; the data split is fixed, so the results hold for this split only "
            "(protocol cv or holdout re-draws it)"
        )
    return {"varies": varies, "ratio": None}


# the data of the last few data sections, per process (a synthetic cohort takes about a second)
_DATA_CACHE: dict[str, dict[str, MultimodalDataset]] = {}


def _datasets(config: RunConfig) -> dict[str, MultimodalDataset]:
    key = json.dumps(json_ready(config.data.to_section()), sort_keys=True)
    if key not in _DATA_CACHE:
        while len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = build_datasets(config)
    return dict(_DATA_CACHE[key])


def _metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: metrics[name] for name in HEADLINE_METRICS}
    out["group_auc"] = dict(metrics["group_auc"])
    out["group_counts"] = dict(metrics["group_counts"])
    out["n"] = metrics["n"]
    if "postprocessing" in metrics:
        out["postprocessing"] = metrics["postprocessing"]["test"]
    return out


def execute(task: Mapping[str, Any]) -> dict[str, Any]:
    """Train one task with the engine and return its store row (the run folder is removed afterwards
    unless ``task["keep"]``)."""
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    config = RunConfig.from_dict(task["config"])
    splits = _datasets(config)
    tuning = task["phase"] == "tune"
    if tuning:
        splits = {"train": splits["train"], "val": splits["val"]}  # the test split stays unseen
    run_dir = Path(task["run_dir"])
    timer = EpochTimer()
    with warnings.catch_warnings():
        # a tuning configuration may leave a group without positives in a small validation split:
        # its metric is NaN by design (and the trial is ranked accordingly)
        from monai_multifair.metrics import UndefinedGroupMetricWarning

        warnings.simplefilter("ignore", UndefinedGroupMetricWarning)
        result = train(
            config,
            run_dir,
            progress=False,
            overwrite=True,
            datasets=splits,
            handlers=[timer],
            final_split="val" if tuning else "test",
        )
    row = {
        key: task[key]
        for key in (
            "key",
            "phase",
            "dataset",
            "method",
            "method_name",
            "options",
            "seed",
            "fold",
            "repeat",
            "trial",
            "config_hash",
        )
    }
    row.update(
        {
            "split": result.metrics["split"],
            # what ran, for the leaderboard's descriptions: the data source, the samples per split, epochs
            "data": {
                "source": config.data.source,
                "samples": {name: len(split) for name, split in sorted(splits.items())},
                "epochs": int(config.trainer.epochs),
                "batch_size": int(config.trainer.batch_size),
            },
            "metrics": _metrics(result.metrics),
            "validation": dict(result.metrics.get("validation", {})),
            "best_epoch": result.best_epoch,
            "timing": {
                "wall_s": time.perf_counter() - started,
                "cpu_s": cpu_seconds() - cpu_started,
                "epoch_s": timer.seconds,
                "epoch_cpu_s": timer.cpu_seconds,
                "threads": torch.get_num_threads(),
            },
            "versions": versions(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    if not task.get("keep", False) and rank() == 0:  # under torchrun, rank 0 wrote the folder
        shutil.rmtree(run_dir, ignore_errors=False)
    return row

"""Equal-budget tuning with Optuna: one study per arm and data set, the selection rule, stale trials.

Each tuned arm gets ``trials`` trials of its method plugin's search space
(:attr:`~monai_multifair.plugins.MethodSpec.search_space`) on each data set, sampled by Optuna's TPE
sampler (seeded per trial, so that an uninterrupted single-worker comparison is reproducible). A trial
trains on the ``train`` split and is scored on ``val`` (the test split is never given to it). The
study stores, for every trial, its validation metrics (user attributes), so that the selection
(:func:`select_trial`) and a second machine sharing the storage see the same numbers.

Stale trials: a trial left ``RUNNING`` by an interrupted comparison on this machine is marked failed
(without ``finished``) when the comparison resumes, and does not count against the budget.
"""

from __future__ import annotations

import math
import os
import socket
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_multifair.errors import MultiFairError

__all__ = [
    "is_empty_space",
    "open_storage",
    "open_study",
    "owner_tag",
    "reap_stale",
    "select_trial",
    "trial_counts",
]


class _Probe:
    """A stand-in trial that records whether a search space asks for anything."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        self.asked.append(name)
        return low

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        self.asked.append(name)
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.asked.append(name)
        return list(choices)[0]


def is_empty_space(search_space: Any) -> bool:
    """Whether a method's ``search_space(trial)`` asks for nothing (then there is nothing to tune)."""
    probe = _Probe()
    search_space(probe)
    return not probe.asked


def open_storage(url: str | None, output: Path) -> Any:
    """The Optuna storage: ``url`` (any Optuna storage URL), or the journal file ``output/optuna.journal``.

    Workers that open the same database at the same moment create its tables one after the other; a
    database that cannot be reached is a one-line :class:`~monai_multifair.errors.MultiFairError`.
    """
    import optuna

    if url is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(output / "optuna.journal")))
    import sqlalchemy as sa

    from monai_multifair.comparison.run_store import _reason, _safe_url, schema_lock

    try:
        engine = sa.create_engine(url)
        try:
            with schema_lock(engine):  # no pool: no connection is left open when the study is dropped
                return optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": sa.pool.NullPool})
        finally:
            engine.dispose()
    except ImportError as err:
        raise MultiFairError(
            f"Optuna storage {_safe_url(url)}: the database driver is not installed ({err})"
        ) from None
    except sa.exc.SQLAlchemyError as err:
        raise MultiFairError(f"Optuna storage {_safe_url(url)}: cannot open it: {_reason(err)}") from None


def open_study(storage: Any, name: str) -> Any:
    """Create or load the study ``name`` (maximising the validation selection metric)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)


def sampler(name: str, trial_index: int, trials: int) -> Any:
    """The TPE sampler of the next trial of study ``name``: seeded by the study and the trial index."""
    import optuna

    seed = (zlib.crc32(name.encode("utf-8")) + 7919 * trial_index) % (2**31)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(1, min(10, trials // 2)), multivariate=True
    )


def owner_tag(token: str) -> str:
    """``host:pid:token`` of this comparison, recorded on the trials it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale(study: Any, token: str) -> int:
    """Mark failed the ``RUNNING`` trials of earlier comparisons on this machine that are no longer
    running (another host's trials are left alone); returns how many."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    reaped = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get("owner", "::"))
        owner_host, _, rest = owner.partition(":")
        pid_text, _, owner_token = rest.partition(":")
        if owner_host != host or owner_token == token:
            continue
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or not _alive(int(pid_text)):
            study.tell(trial.number, state=TrialState.FAIL)
            reaped += 1
    return reaped


def trial_counts(study: Any, token: str) -> dict[str, int]:
    """``finished`` (complete, or failed with a result), ``mine`` (running here), ``elsewhere`` (running on
    another machine or comparison)."""
    from optuna.trial import TrialState

    counts = {"finished": 0, "mine": 0, "elsewhere": 0}
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE or (
            trial.state == TrialState.FAIL and trial.user_attrs.get("finished")
        ):
            counts["finished"] += 1
        elif trial.state == TrialState.RUNNING:
            counts[
                "mine" if str(trial.user_attrs.get("owner", "")).endswith(f":{token}") else "elsewhere"
            ] += 1
    return counts


def select_trial(trials: list[Mapping[str, Any]], metric: str, auc_guard: float) -> dict[str, Any]:
    """The selected trial: the best validation ``metric`` among the trials whose validation AUC is within
    ``auc_guard`` of the best validation AUC (ties: the lower trial number). When ``metric`` is undefined
    for every eligible trial, the validation AUC decides.

    ``metric="distance_to_optimal"`` (MEDFAIR's DTO, smaller is better) is computed among the eligible
    trials from their per-group validation AUCs (``validation["group_auc"]``), with the utopia point of
    those trials (:func:`~monai_multifair.comparison.pareto.distance_to_optimal`).

    Args:
        trials: ``{"number", "options", "validation": {metric: value, "group_auc": {group: AUC}}}`` per
            finished trial.
        metric: the selection metric.
        auc_guard: the AUC margin.

    Returns:
        The chosen trial, with ``"rule"`` saying how it was chosen.

    Raises:
        MultiFairError: no trial has a defined validation AUC.
    """

    def value(trial: Mapping[str, Any], name: str) -> float:
        v = trial["validation"].get(name)
        return float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else math.nan

    defined = [t for t in trials if not math.isnan(value(t, "auc"))]
    if not defined:
        raise MultiFairError(
            f"none of {len(trials)} finished trial(s) has a defined validation AUC: nothing to select from"
        )
    best_auc = max(value(t, "auc") for t in defined)
    eligible = [t for t in defined if value(t, "auc") >= best_auc - auc_guard]
    if metric == "distance_to_optimal":
        from monai_multifair.comparison.pareto import distance_to_optimal

        groups = [dict(t["validation"].get("group_auc") or {}) for t in eligible]
        distances = distance_to_optimal(groups) if any(groups) else [math.nan] * len(eligible)
        eligible = [{**t, "validation": {**t["validation"], metric: d}} for t, d in zip(eligible, distances)]
    sign = -1.0 if metric == "distance_to_optimal" else 1.0  # the distance: smaller is better
    scored = [t for t in eligible if not math.isnan(value(t, metric))]
    if scored:
        chosen = min(scored, key=lambda t: (-sign * value(t, metric), t["number"]))
        rule = f"{'smallest' if sign < 0 else 'best'} validation {metric} among {len(eligible)} trial(s) with validation AUC >= {best_auc:.4f} - {auc_guard:g}"
    else:
        chosen = min(eligible, key=lambda t: (-value(t, "auc"), t["number"]))
        rule = f"validation {metric} undefined for every eligible trial: best validation AUC"
    return {**chosen, "rule": rule, "best_validation_auc": best_auc}

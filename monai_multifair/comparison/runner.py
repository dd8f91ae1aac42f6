"""``compare``: methods x data sets x seeds, equal tuning budget, final runs, the leaderboard.

Steps, for every data set and arm:

1. **Tuning** (tuned arms whose method declares a search space): ``trials`` Optuna trials, each a
   training run on ``train`` scored on ``val`` (:mod:`~monai_multifair.comparison.tuning`); the
   configuration is chosen by the selection rule (validation metric with an AUC guard). A trial whose
   configuration already ran (a categorical space has few points) reuses that run's result.
2. **Final runs**: the chosen configuration (or the fixed options of an untuned arm) trained with
   ``seeds`` seeds (:mod:`~monai_multifair.comparison.tasks`), each evaluated once on its test split.
3. **Leaderboard**: :func:`~monai_multifair.comparison.leaderboard.summarize` and the output files.

Every finished run is a row of ``runs.jsonl`` (:class:`~monai_multifair.comparison.RunStore`); calling
:func:`compare` again on the same output folder continues where it stopped. With ``jobs > 1`` runs
train in that many worker processes (spawned, ``threads`` torch threads each).

Several machines: with ``store`` (a database URL, :class:`~monai_multifair.comparison.SQLRunStore`)
every comparison that shares it claims each run before training it, keeps its claims alive while it
trains (every ``lease_s / 3`` seconds) and stores the row and drops the claim in one transaction; the
Optuna studies live in the same database unless ``config.storage`` says otherwise. A run (or trial)
whose worker died is taken over once its claim is ``lease_s`` seconds old.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from monai_multifair.comparison import tasks as task_module
from monai_multifair.comparison.compare_config import CompareConfig, DatasetEntry, MethodEntry
from monai_multifair.comparison.eta import RunTimeEstimator
from monai_multifair.comparison.run_store import SQLRunStore, config_hash, open_run_store
from monai_multifair.comparison.tuning import (
    is_empty_space,
    open_storage,
    open_study,
    owner_tag,
    reap_stale,
    sampler,
    select_trial,
    trial_counts,
)
from monai_multifair.core.distributed import rank, world_size
from monai_multifair.engine.outputs import json_ready
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import get_method_spec

__all__ = ["ArmPlan", "THREAD_ENV", "compare", "usable_cores"]

#: Environment variables that size the thread pools of OpenMP, MKL and OpenBLAS in the worker processes.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a container's
    cpuset; the machine's count where the platform has no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _thread_environment(threads: int) -> Any:
    """:data:`THREAD_ENV` set to ``threads`` while worker processes start (they inherit it), then restored."""
    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update({name: str(threads) for name in THREAD_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class ArmPlan:
    """One arm on one data set: its tuning study (if tuned), its selection, its final runs."""

    dataset: DatasetEntry
    method: MethodEntry
    document: dict[str, Any]
    tuned: bool
    study_name: str | None = None
    study: Any = None
    selected: dict[str, Any] | None = None
    in_flight: set[str] = field(default_factory=set)
    elsewhere: bool = False  # final runs claimed by another worker (a shared store)
    complete: bool = False  # every final run is stored

    @property
    def name(self) -> str:
        return f"{self.dataset.name}/{self.method.label}"


def _hash_of(config: Any) -> str:
    document = config.to_dict()
    document.pop("output", None)
    return config_hash(document)


class _Comparison:
    """The state of one :func:`compare` call."""

    def __init__(
        self,
        config: CompareConfig,
        output: Path,
        *,
        keep_runs: bool,
        store: str | None = None,
        lease_s: float = 120.0,
    ) -> None:
        self.config = config
        self.output = output
        self.keep_runs = keep_runs
        self.token = uuid.uuid4().hex[:12]
        self.owner = owner_tag(self.token)
        self.store_url = store
        self.store = open_run_store(store, output)
        self.shared = isinstance(self.store, SQLRunStore)
        self.lease_s = lease_s
        self.storage = None
        self.plans: list[ArmPlan] = []
        for dataset in config.datasets:
            document = task_module.dataset_document(dataset, config.quick)
            for method in config.methods:
                spec = get_method_spec(method.name, "training")
                tuned = method.tune and not is_empty_space(spec.search_space)
                plan = ArmPlan(dataset, method, document, tuned)
                if not tuned:
                    plan.selected = {
                        "options": dict(method.options),
                        "rule": self._untuned_rule(method),
                        "number": None,
                    }
                self.plans.append(plan)
        self.specs = {m.name: get_method_spec(m.name, "training") for m in config.methods}
        self._tasks: dict[tuple, dict[str, Any]] = {}

    @staticmethod
    def _untuned_rule(method: MethodEntry) -> str:
        return (
            "fixed options (not tuned)"
            if not method.tune
            else "nothing to tune (the method's search space is empty)"
        )

    # -- configs and keys
    def run_config(
        self, plan: ArmPlan, options: dict[str, Any], phase: str, index: int
    ) -> tuple[Any, dict[str, Any]]:
        settings = task_module.seed_settings(plan.dataset, phase, index)
        config = task_module.run_document(plan.document, plan.method.name, options, settings, plan.dataset)
        return config, settings

    def task(
        self, plan: ArmPlan, options: dict[str, Any], phase: str, index: int, trial: int | None
    ) -> dict[str, Any]:
        """The task of one run (memoised: resolving a config takes a few tens of milliseconds)."""
        memo = (plan.name, phase, index, trial, json.dumps(json_ready(options), sort_keys=True))
        if memo not in self._tasks:
            self._tasks[memo] = self._task(plan, options, phase, index, trial)
        return self._tasks[memo]

    def _task(
        self, plan: ArmPlan, options: dict[str, Any], phase: str, index: int, trial: int | None
    ) -> dict[str, Any]:
        config, settings = self.run_config(plan, options, phase, index)
        digest = _hash_of(config)
        if phase == "tune":
            key = f"tune|{plan.dataset.name}|{plan.method.label}|{digest}"
            folder = f"tune/{plan.dataset.name}/{plan.method.label}/{digest}"
        else:
            key = f"final|{plan.dataset.name}|{plan.method.label}|seed{settings['seed']}|{digest}"
            folder = f"final/{plan.dataset.name}/{plan.method.label}/seed{settings['seed']}-{digest}"
        return {
            "key": key,
            "phase": phase,
            "dataset": plan.dataset.name,
            "method": plan.method.label,
            "method_name": plan.method.name,
            "options": options,
            "trial": trial,
            "config_hash": digest,
            "config": config.to_dict(),
            "run_dir": str(self.output / "runs" / folder),
            "keep": self.keep_runs,
            **settings,
        }

    # -- tuning
    def open_studies(self) -> None:
        tuned = [p for p in self.plans if p.tuned]
        if not tuned:
            return
        self.storage = open_storage(self.config.storage or self.store_url, self.output)
        for plan in tuned:
            base = {
                "dataset": plan.document,
                "protocol": plan.dataset.to_dict(),
                "method": plan.method.to_dict(),
                "selection": self.config.selection.metric,
            }
            plan.study_name = f"{plan.name}/{config_hash(base)[:8]}"
            plan.study = open_study(self.storage, plan.study_name)
            reap_stale(plan.study, self.token)

    def trial_options(self, plan: ArmPlan, trial: Any) -> dict[str, Any]:
        suggested = self.specs[plan.method.name].search_space(trial)
        return {**plan.method.options, **suggested}

    def tuning_done(self, plan: ArmPlan) -> bool:
        counts = trial_counts(plan.study, self.token)
        return counts["finished"] >= self.config.trials and counts["mine"] == 0

    def finished_trials(self, plan: ArmPlan) -> list[dict[str, Any]]:
        from optuna.trial import TrialState

        out = []
        for trial in plan.study.get_trials(deepcopy=False):
            finished = trial.state == TrialState.COMPLETE or (
                trial.state == TrialState.FAIL and trial.user_attrs.get("finished")
            )
            if finished:
                out.append(
                    {
                        "number": trial.number,
                        "options": dict(trial.user_attrs.get("options", {})),
                        "validation": dict(trial.user_attrs.get("validation", {})),
                        "config_hash": trial.user_attrs.get("config_hash"),
                    }
                )
        return out[: self.config.trials] if len(out) > self.config.trials else out

    def tell(self, plan: ArmPlan, trial: Any, row: dict[str, Any]) -> bool:
        """Record a finished trial: its options and validation metrics (user attributes), its value.
        ``False`` when the trial was closed already (another worker took it over: its claim expired)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        validation = row["metrics"]
        try:
            trial.set_user_attr("options", row["options"])
            trial.set_user_attr(
                "validation",
                {
                    **{k: validation.get(k) for k in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds")},
                    "group_auc": dict(validation.get("group_auc") or {}),
                },
            )
            trial.set_user_attr("config_hash", row["config_hash"])
            trial.set_user_attr("finished", True)
        except UpdateFinishedTrialError:
            return False
        if self.config.selection.metric == "distance_to_optimal":
            # the sampler's value: the distance to AUC 1 in every group (the DTO's utopia depends on the
            # trials chosen among, so the selection recomputes it; both are smaller-is-better: negated)
            aucs = [
                float("nan") if v is None else float(v) for v in (validation.get("group_auc") or {}).values()
            ]
            metric = -(sum((1.0 - a) ** 2 for a in aucs) ** 0.5) if aucs else None
        else:
            metric = validation.get(self.config.selection.metric)
        if metric is None or metric != metric:  # undefined: a failed trial that still used its budget
            plan.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        else:
            plan.study.tell(trial.number, float(metric), skip_if_finished=True)
        return True

    def reap_abandoned(self, plan: ArmPlan) -> int:
        """A shared store: close the running trials of other workers that hold no live claim on their run
        and started more than ``lease_s`` ago (their worker died): with the stored row where the run
        was stored (the worker died before recording the trial, or is recording it now: the same
        values), else as failed (not finished, so the budget frees up); returns how many."""
        from optuna.trial import Trial, TrialState

        if not self.shared:
            return 0
        now = datetime.datetime.now()
        reaped = 0
        for trial in plan.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("owner") == self.owner or trial.datetime_start is None:
                continue
            if (now - trial.datetime_start).total_seconds() < self.lease_s:
                continue  # just asked: its worker may not have claimed its run yet
            key = trial.user_attrs.get("run_key")
            if key is not None and self.store.claimed(key):
                continue
            row = self.store.get(key) if key is not None else None
            if row is not None:
                self.tell(plan, Trial(plan.study, trial._trial_id), row)
            else:
                plan.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            reaped += 1
        return reaped


def compare(
    config: CompareConfig,
    output: str | Path,
    *,
    jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    keep_runs: bool = False,
    run: bool = True,
    pareto: bool = False,
    store: str | None = None,
    lease_s: float = 120.0,
) -> dict[str, Any]:
    """Run (or continue) a comparison and write its leaderboard into ``output``.

    Args:
        config: what to compare (:func:`~monai_multifair.comparison.load_compare_config`).
        output: the output folder: ``runs.jsonl`` (the store), ``optuna.journal`` (the studies, unless
            ``config.storage``), ``compare.yaml``, ``results.json``, ``leaderboard.md``,
            ``leaderboard.html``.
        jobs: worker processes (1: train in this process).
        threads: torch threads per worker (default: the usable cores divided by ``jobs``, at least 1, so
            that the workers never oversubscribe the cores; :func:`usable_cores`). Each worker also gets
            ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` set to it.
        progress: a progress bar with ETA on a terminal (otherwise one line per finished run via ``log``).
            The ETA weighs each run left by its epochs and the measured time of its data set and arm
            (:class:`~monai_multifair.comparison.eta.RunTimeEstimator`); the first runs probe every data
            set and arm once.
        log: receives one line per finished run and the summary lines.
        keep_runs: keep each run's folder under ``output/runs`` (default: removed once its row is stored).
        run: ``False`` trains nothing: the leaderboard of what the store holds so far (an interrupted
            comparison's is marked incomplete; arms whose tuning has not finished have no final runs).
        pareto: also draw each data set's tuning trials on the validation AUC / ES-AUC plane with their
            Pareto front (``pareto-<data set>.png``, linked from the leaderboard).
        store: a database URL (``postgresql://user:password@host/db``, ``sqlite:///path.db``) that
            several comparisons, on any machines, share: each run is trained by one of them, and the
            Optuna studies live there too (unless ``config.storage``). Default: ``output/runs.jsonl``.
        lease_s: a shared store's claim lifetime in seconds: a claim is renewed every ``lease_s / 3``
            seconds while its run trains, and a run whose worker died is taken over after ``lease_s``.

    Returns:
        The ``results.json`` content (:func:`~monai_multifair.comparison.leaderboard.summarize`), with
        ``store``: where the rows are, how many, and how many runs other workers are training now.

    Raises:
        MultiFairError: bad arguments, a data set whose package is missing, a study that no trial
            could finish, a database that cannot be reached (one line; no run is stored that did not
            finish).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise MultiFairError(f"expected `jobs` to be an integer >= 1, got {jobs!r}")
    if isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) or not lease_s >= 3:
        raise MultiFairError(f"expected `lease_s` to be a number of seconds >= 3, got {lease_s!r}")
    options = {"store": store, "lease_s": float(lease_s), "pareto": pareto}
    if world_size() > 1:
        if jobs != 1:
            raise MultiFairError(
                f"expected `jobs` to be 1 under torchrun (every run trains on all the ranks), got {jobs}"
            )
        if rank() != 0:  # the other ranks train what rank 0 hands out, then get its results
            return _follow_rank_zero()
        try:
            results = _compare_here(config, output, jobs, threads, progress, log, keep_runs, run, **options)
        except BaseException as error:  # the other ranks must not wait for a rank 0 that stopped
            _from_rank_zero(("error", f"rank 0 stopped: {type(error).__name__}: {error}"))
            raise
        _from_rank_zero(("results", results))
        return results
    return _compare_here(config, output, jobs, threads, progress, log, keep_runs, run, **options)


def _compare_here(
    config: CompareConfig,
    output: str | Path,
    jobs: int,
    threads: int | None,
    progress: bool,
    log: Callable[[str], None] | None,
    keep_runs: bool,
    run: bool,
    pareto: bool = False,
    store: str | None = None,
    lease_s: float = 120.0,
) -> dict[str, Any]:
    """:func:`compare` in this process (rank 0 under torchrun)."""
    from monai_multifair.comparison.leaderboard import summarize, write_outputs

    cores = usable_cores()
    threads = max(1, cores // jobs) if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise MultiFairError(f"expected `threads` to be an integer >= 1, got {threads!r}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "compare.yaml").write_text(config.to_yaml(), encoding="utf-8")
    state = _Comparison(config, output, keep_runs=keep_runs, store=store, lease_s=lease_s)
    state.open_studies()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if run and jobs * threads > cores:
        say(
            f"note: {jobs} job(s) x {threads} thread(s) = {jobs * threads} threads on {cores} usable core(s): "
            "the runs will compete for the cores (leave --threads out to share them)"
        )
    if run:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            _Scheduler(state, jobs, threads, progress, say).run()
        finally:
            torch.set_num_threads(previous)
    else:
        for plan in state.plans:
            if plan.tuned and state.tuning_done(plan):
                plan.selected = select_trial(
                    state.finished_trials(plan), config.selection.metric, config.selection.auc_guard
                )
    keys = {
        plan.name: [
            state.task(plan, plan.selected["options"], "final", i, None)["key"] for i in range(config.seeds)
        ]
        for plan in state.plans
        if plan.selected is not None
    }
    results = summarize(state.store, config, state.plans, keys)
    results["store"] = {
        "location": state.store.where if state.shared else str(state.store.path),
        "runs": len(state.store),
        "claimed_now": state.store.pending(),
    }
    write_outputs(results, output, pareto=pareto)
    return results


# ---------------------------------------------------------------------------------------------------
# under torchrun: rank 0 schedules (Optuna, the store, the outputs); every rank trains each run
def _from_rank_zero(value: Any) -> Any:
    payload = [value]
    torch.distributed.broadcast_object_list(payload, src=0)
    return payload[0]


def _follow_rank_zero() -> dict[str, Any]:
    """Train every task rank 0 hands out (each run is one collective ``engine.train``); return rank 0's
    results, or raise its error."""
    while True:
        kind, payload = _from_rank_zero(None)
        if kind == "task":
            task_module.execute(payload)
        elif kind == "results":
            return payload
        else:
            raise MultiFairError(payload)


class _Scheduler:
    """Hands out tasks (trials first, then final runs) to ``jobs`` workers and stores their rows."""

    def __init__(
        self,
        state: _Comparison,
        jobs: int,
        threads: int,
        progress: bool,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.state = state
        self.jobs = jobs
        self.threads = threads
        self.say = say
        config = state.config
        self.total = sum((config.trials if p.tuned else 0) + config.seeds for p in state.plans)
        # an estimate: stored final rows of an earlier configuration of the same arm count too
        self.done = sum(
            min(config.trials, trial_counts(p.study, state.token)["finished"]) for p in state.plans if p.tuned
        ) + sum(
            min(
                config.seeds,
                len(state.store.rows(phase="final", dataset=p.dataset.name, method=p.method.label)),
            )
            for p in state.plans
        )
        self.done = min(self.done, self.total)
        self.clock = clock
        self.started = clock()
        self.eta = RunTimeEstimator(clock)
        self.epochs: dict[str, int] = {}  # plan name -> trainer.epochs of its runs
        self.probed: set[str] = set()  # plans that have handed out a run in this session
        self.session_done = 0
        self.bar = None
        if progress and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                desc="compare",
                unit="run",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )
        self.pending_trials: dict[str, tuple[ArmPlan, Any]] = {}  # task key -> (plan, Optuna trial)
        # waiting for runs of other workers: a shared store polls often enough to take over in time
        self.poll_s = min(10.0, state.lease_s / 3) if state.shared else 10.0
        self.heartbeat_error: str | None = None

    # -- choosing the next task
    def next_task(self) -> dict[str, Any] | None:
        """The next run: first one of every arm and data set not yet started in this session (so that the
        ETA measures each early), then in plan order. Each study's trials are asked in the same order
        either way, so a single-worker comparison chooses the same configurations."""
        for plan in sorted(self.state.plans, key=lambda p: p.name in self.probed):
            task = self._next_for(plan)
            if task is not None:
                self.probed.add(plan.name)
                return task
        return None

    # -- the time left
    def _epochs_of(self, plan: ArmPlan) -> int:
        if plan.name not in self.epochs:
            config, _ = self.state.run_config(plan, dict(plan.method.options), "final", 0)
            self.epochs[plan.name] = int(config.trainer.epochs)
        return self.epochs[plan.name]

    def runs_left(self) -> list[tuple[str, str, int]]:
        """``(data set, arm, epochs)`` of every run still to finish (tuning trials, then final runs)."""
        state, config = self.state, self.state.config
        out = []
        for plan in state.plans:
            left = 0
            if plan.tuned and plan.selected is None:
                left += max(0, config.trials - trial_counts(plan.study, state.token)["finished"])
            if plan.selected is None:
                left += config.seeds
            elif not plan.complete:
                keys = [
                    state.task(plan, plan.selected["options"], "final", i, None)["key"]
                    for i in range(config.seeds)
                ]
                left += sum(key not in state.store for key in keys)
            out += [(plan.dataset.name, plan.method.label, self._epochs_of(plan))] * left
        return out

    def _next_for(self, plan: ArmPlan) -> dict[str, Any] | None:
        state, config = self.state, self.state.config
        if plan.tuned and plan.selected is None:
            while True:
                state.reap_abandoned(plan)
                counts = trial_counts(plan.study, state.token)
                if counts["finished"] >= config.trials and counts["mine"] == 0:
                    self._select(plan)
                    break
                if counts["finished"] + counts["mine"] + counts["elsewhere"] >= config.trials:
                    return None  # the budget is used up by trials still running (here or elsewhere)
                index = len(plan.study.get_trials(deepcopy=False))
                plan.study.sampler = sampler(plan.study_name, index, config.trials)
                trial = plan.study.ask()
                trial.set_user_attr("owner", state.owner)
                options = state.trial_options(plan, trial)
                task = state.task(plan, options, "tune", 0, trial.number)
                stored = state.store.get(task["key"])
                if stored is not None:  # this configuration already ran: reuse its result
                    state.tell(plan, trial, stored)
                    self._advance(
                        f"tune {plan.name} trial {trial.number}: same configuration as an earlier trial"
                    )
                    continue
                if task["key"] in self.pending_trials or not state.store.claim(
                    task["key"], state.owner, state.lease_s
                ):  # the same configuration is training right now (here or on another worker)
                    plan.study.tell(trial.number, state=_fail_state())
                    return None
                trial.set_user_attr("run_key", task["key"])
                self.pending_trials[task["key"]] = (plan, trial)
                return task
        if plan.selected is None or plan.complete:
            return None
        elsewhere = False
        for index in range(config.seeds):
            task = state.task(plan, plan.selected["options"], "final", index, None)
            if task["key"] in plan.in_flight or task["key"] in state.store:  # a read before a claim
                continue
            if state.store.claim(task["key"], state.owner, state.lease_s):
                plan.in_flight.add(task["key"])
                return task
            elsewhere = True  # claimed by another worker (or stored just now: the next round sees it)
        plan.elsewhere = elsewhere
        plan.complete = not plan.in_flight and not elsewhere
        return None

    def _select(self, plan: ArmPlan) -> None:
        trials = self.state.finished_trials(plan)
        try:
            plan.selected = select_trial(
                trials, self.state.config.selection.metric, self.state.config.selection.auc_guard
            )
        except MultiFairError as err:
            raise MultiFairError(f"tuning {plan.name}: {err}") from None

    # -- running
    def _execute(self, task: dict[str, Any]) -> dict[str, Any]:
        """Train ``task`` here (and, under torchrun, on every rank: rank 0 hands it out first)."""
        if world_size() > 1:
            _from_rank_zero(("task", task))
        return task_module.execute(task)

    def run(self) -> None:
        stop = threading.Event()
        heartbeat = None
        if self.state.shared:
            heartbeat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
            heartbeat.start()
        try:
            self._run()
        finally:
            stop.set()
            if heartbeat is not None:
                heartbeat.join()

    def _heartbeat(self, stop: threading.Event) -> None:
        """Renew this comparison's claims every ``lease_s / 3`` seconds until ``stop``."""
        while not stop.wait(self.state.lease_s / 3):
            try:
                self.state.store.renew(self.state.owner, self.state.lease_s)
                self.heartbeat_error = None
            except MultiFairError as err:  # the main loop meets the same database and stops there
                if self.heartbeat_error is None:
                    self.say(f"renewing the claims failed (retrying): {err}")
                self.heartbeat_error = str(err)

    def _run(self) -> None:
        if self.jobs == 1:
            while True:
                task = self.next_task()
                if task is None:
                    if self._waiting_elsewhere():
                        time.sleep(self.poll_s)
                        continue
                    break
                try:
                    row = self._execute(task)
                except BaseException:
                    self._abandon(task)
                    raise
                self._finish(task, row)
            self._close()
            return
        context = multiprocessing.get_context("spawn")
        with (
            _thread_environment(self.threads),
            cf.ProcessPoolExecutor(
                self.jobs, mp_context=context, initializer=_init_worker, initargs=(self.threads,)
            ) as pool,
        ):
            running: dict[cf.Future, dict[str, Any]] = {}
            try:
                while True:
                    while len(running) < self.jobs:
                        task = self.next_task()
                        if task is None:
                            break
                        running[pool.submit(task_module.execute, task)] = task
                    if not running:
                        if self._waiting_elsewhere():
                            time.sleep(self.poll_s)
                            continue
                        break
                    finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for future in finished:
                        task = running.pop(future)
                        self._finish(task, future.result())
            except BaseException:
                for future, task in running.items():
                    future.cancel()
                    self._abandon(task)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            finally:
                self._close()

    def _waiting_elsewhere(self) -> bool:
        """Whether trials or final runs are running on other workers (then wait, and take over the runs
        of a worker that died once their claims expire)."""
        for plan in self.state.plans:
            if plan.tuned and plan.selected is None:
                self.state.reap_abandoned(plan)
                if trial_counts(plan.study, self.state.token)["elsewhere"] > 0:
                    return True
            if plan.elsewhere:
                return True
        return False

    def _plan(self, task: dict[str, Any]) -> ArmPlan:
        return next(
            p
            for p in self.state.plans
            if p.dataset.name == task["dataset"] and p.method.label == task["method"]
        )

    def _finish(self, task: dict[str, Any], row: dict[str, Any]) -> None:
        row = {**row, "worker": self.state.owner}
        stored = self.state.store.finish(row, self.state.owner)
        if not stored:  # this worker's claim had expired and another worker stored the run first
            row = self.state.store.get(task["key"]) or row
        plan = self._plan(task)
        if task["phase"] == "tune":
            _, trial = self.pending_trials.pop(task["key"])
            self.state.tell(plan, trial, row)
            what = f"tune {plan.name} trial {trial.number}"
        else:
            plan.in_flight.discard(task["key"])
            what = f"final {plan.name} seed {task['seed']}"
        if not stored:
            what += " (stored already by another worker: this worker's claim had expired)"
        self.eta.record(
            task["dataset"],
            task["method"],
            epochs=int(task["config"]["trainer"]["epochs"]),
            seconds=float(row["timing"]["wall_s"]),
        )
        metrics = row["metrics"]
        es = metrics.get("es_auc")
        auc = metrics.get("auc")
        self._advance(
            f"{what}: {row['split']} AUC {_fmt(auc)}, ES-AUC {_fmt(es)} ({row['timing']['wall_s']:.1f} s)",
            ran=True,
        )

    def _abandon(self, task: dict[str, Any]) -> None:
        """An interrupted task: its trial fails without a result and its claim is dropped (it will run
        again, here or on another worker). A database that cannot be reached leaves both to expire."""
        from sqlalchemy.exc import SQLAlchemyError

        # a database that cannot be reached: the claim expires after lease_s and the trial is reaped
        # then; the error that stopped the comparison is the one raised
        with contextlib.suppress(MultiFairError):
            self.state.store.release(task["key"], self.state.owner)
        if task["phase"] == "tune" and task["key"] in self.pending_trials:
            plan, trial = self.pending_trials.pop(task["key"])
            with contextlib.suppress(SQLAlchemyError):
                plan.study.tell(trial.number, state=_fail_state(), skip_if_finished=True)
        else:
            self._plan(task).in_flight.discard(task["key"])

    def _advance(self, line: str, ran: bool = False) -> None:
        self.done += 1
        if ran:
            self.session_done += 1
        remaining = self.eta.remaining(self.runs_left()) if ran else None
        eta = "" if remaining is None else f"ETA {_clock(remaining)}"
        if self.bar is not None:
            if eta:
                self.bar.set_postfix_str(eta, refresh=False)
            self.bar.update(1)
            return
        elapsed = self.clock() - self.started
        self.say(f"[{self.done}/{self.total}, {_clock(elapsed)}{', ' + eta if eta else ''}] {line}")

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _init_worker(threads: int) -> None:
    """A fresh worker process: ``threads`` intra-op and inter-op torch threads (its OpenMP and MKL pools
    were sized by :data:`THREAD_ENV`, inherited from the parent)."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


def _fail_state() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL


def _fmt(value: Any) -> str:
    return "undefined" if value is None or value != value else f"{value:.3f}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

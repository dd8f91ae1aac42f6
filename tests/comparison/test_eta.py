"""The ETA of ``compare`` (a fake clock, simulated runs) and the worker thread settings."""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os

import numpy as np
import pytest

from monai_multifair.comparison.eta import RunTimeEstimator
from monai_multifair.comparison.runner import THREAD_ENV, _init_worker, _thread_environment, usable_cores


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_remaining_weighs_each_run_by_its_group_and_epochs() -> None:
    clock = FakeClock()
    eta = RunTimeEstimator(clock)
    assert eta.remaining([("a", "erm", 2)]) is None  # nothing measured yet
    assert eta.remaining([]) == 0.0
    eta.record("a", "erm", epochs=2, seconds=4.0)  # 2 s / epoch
    eta.record("b", "erm", epochs=1, seconds=10.0)  # 10 s / epoch
    clock.now = 7.0  # two workers: 14 s of work in 7 s
    # by hand: (a, erm) 2 s/epoch; (a, groupdro) borrows data set a: 2 s/epoch; (b, x) data set b: 10;
    # (c, erm) borrows arm erm: (4 + 10) / 3 s/epoch; (c, x) every run: 14 / 3
    runs = [("a", "erm", 3), ("a", "groupdro", 1), ("b", "x", 2), ("c", "erm", 3), ("c", "x", 3)]
    cost = 2 * 3 + 2 * 1 + 10 * 2 + 14 / 3 * 3 + 14 / 3 * 3
    assert eta.remaining(runs) == pytest.approx(7.0 * cost / 14.0)
    assert eta.seconds_per_epoch("c", "y") == pytest.approx(14 / 3)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_record_refuses_bad_epochs(bad) -> None:
    with pytest.raises(ValueError, match="`epochs`"):
        RunTimeEstimator(FakeClock()).record("a", "b", epochs=bad, seconds=1.0)


def test_record_refuses_bad_seconds() -> None:
    with pytest.raises(ValueError, match="`seconds`"):
        RunTimeEstimator(FakeClock()).record("a", "b", epochs=1, seconds=math.nan)


def _simulate(order: list[tuple[str, str, int, float]], jobs_speed: float = 1.0):
    """Run ``order`` (data set, arm, epochs, true seconds) one after the other on a fake clock; yield after
    each run the estimator's ETA, the count-based ETA of the old progress line, and the true time left."""
    clock = FakeClock()
    eta = RunTimeEstimator(clock)
    for i, (d, a, e, s) in enumerate(order):
        clock.now += s * jobs_speed
        eta.record(d, a, epochs=e, seconds=s)
        left = order[i + 1 :]
        truth = sum(run[3] for run in left) * jobs_speed
        naive = clock.now / (i + 1) * len(left)
        yield i + 1, eta.remaining((r[0], r[1], r[2]) for r in left), naive, truth


def _workload(seed: int = 0) -> list[tuple[str, str, int, float]]:
    """3 data sets (seconds per epoch 0.2, 1, 5; 6, 2, 4 epochs) x 3 arms (x1, x1.6, x1.2), 4 trials and
    6 final runs each, noisy run times (lognormal, sigma 0.25); in the scheduler's order: the first run of
    every (data set, arm), then plan by plan."""
    rng = np.random.default_rng(seed)
    datasets = {"tables": (0.2, 6), "cohort": (1.0, 2), "volumes": (5.0, 4)}
    arms = {"erm": 1.0, "multifair": 1.6, "groupdro": 1.2}
    plans = [(d, a) for d in datasets for a in arms]
    runs = {p: 10 for p in plans}
    order = []

    def one(plan):
        d, a = plan
        per_epoch, epochs = datasets[d]
        runs[plan] -= 1
        return (d, a, epochs, per_epoch * epochs * arms[a] * float(rng.lognormal(0.0, 0.25)))

    order += [one(p) for p in plans]  # the probes
    for p in plans:
        order += [one(p) for _ in range(runs[p])]
    return order


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("speed", [1.0, 0.5, 3.0])  # one worker; two workers; a loaded machine
def test_eta_is_within_2x_of_the_truth_after_the_first_10_percent(seed: int, speed: float) -> None:
    order = _workload(seed)
    naive_ratios = []
    for done, eta, naive, truth in _simulate(order, speed):
        if done < len(order) / 10 or truth == 0:
            continue
        assert 0.5 <= eta / truth <= 2.0, (done, eta, truth)
        naive_ratios.append(naive / truth)
    # the scenario discriminates: the old count-based ETA leaves the 2x band
    assert min(naive_ratios) < 0.5 or max(naive_ratios) > 2.0


def test_thread_environment_is_set_for_workers_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with _thread_environment(3):
        assert all(os.environ[name] == "3" for name in THREAD_ENV)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ


def _worker_settings() -> tuple[dict[str, str | None], int, int]:
    import torch

    return (
        {n: os.environ.get(n) for n in THREAD_ENV},
        torch.get_num_threads(),
        torch.get_num_interop_threads(),
    )


def test_a_spawned_worker_uses_its_share_of_the_cores() -> None:
    threads = max(1, usable_cores() // 2)
    context = multiprocessing.get_context("spawn")
    with (
        _thread_environment(threads),
        cf.ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool,
    ):
        env, intra, inter = pool.submit(_worker_settings).result(timeout=300)
    assert env == dict.fromkeys(THREAD_ENV, str(threads))
    assert (intra, inter) == (threads, threads)


def test_usable_cores_follows_the_affinity_mask() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_cores() == expected

"""The shared run store (``--store URL``) against a real PostgreSQL server (and SQLite): claims,
two worker processes, a worker killed mid-run, the leaderboard of everything, an unreachable database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_compare import TINY  # the tiny comparison: erm (untuned) and groupdro (2 trials), 2 seeds: 6 runs

from monai_multifair.cli import main
from monai_multifair.comparison import CompareConfig, RunStore, SQLRunStore, compare
from monai_multifair.comparison import tasks as task_module
from monai_multifair.errors import MultiFairError

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("_store_worker.py")

DOCUMENT = {"methods": ["erm", "groupdro"], "datasets": [TINY], "seeds": 2, "trials": 2}
RUNS = 6
LEASE_S = 3.0  # short, so that the test takes over a killed worker's run within seconds


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


# -- the store's claims (the database's clock; a negative lease is a claim that expired already)
def test_a_run_is_claimed_by_one_worker_until_its_claim_expires(store_url: str) -> None:
    store = SQLRunStore(store_url)
    assert store.claim("a", "w1", 60)
    assert not store.claim("a", "w2", 60)  # w1's claim is live
    assert store.claimed("a") and store.pending() == 1
    assert store.claim("a", "w1", 60)  # the owner may claim again (a renewal)
    assert store.claim("b", "w1", -1)  # expired at once: as if w1 had died long ago
    assert not store.claimed("b")
    assert store.claim("b", "w2", 60)  # taken over
    assert not store.claim("b", "w1", 60)


def test_renew_keeps_the_claims_of_a_live_worker(store_url: str) -> None:
    store = SQLRunStore(store_url)
    assert store.claim("a", "w1", -1) and store.claim("b", "w1", -1) and store.claim("c", "w2", -1)
    assert store.renew("w1", 60) == 2
    assert not store.claim("a", "w2", 60) and not store.claim("b", "w2", 60)
    assert store.claim("c", "w3", 60)  # w2 renewed nothing: its claim stayed expired


def test_finish_stores_the_row_once_and_a_stored_run_is_never_claimed(store_url: str) -> None:
    store = SQLRunStore(store_url)
    assert store.claim("a", "w1", 60)
    row = {
        "key": "a",
        "phase": "final",
        "dataset": "d",
        "method": "erm",
        "seed": 1,
        "metrics": {"auc": float("nan")},
    }
    assert store.finish(row, "w1")
    assert store.pending() == 0 and not store.claimed("a")
    assert not store.claim("a", "w2", 60)
    assert not store.finish({**row, "seed": 2}, "w2")  # a late duplicate: nothing written
    again = SQLRunStore(store_url)
    assert len(again) == 1 and "a" in again and "b" not in again
    assert again.get("a")["metrics"]["auc"] is None and again.get("a")["seed"] == 1
    assert again.rows(phase="final", method="erm") == [again.get("a")] and again.rows(phase="tune") == []
    with pytest.raises(MultiFairError, match="never runs twice"):
        again.append(row)


def test_release_frees_a_run_at_once(store_url: str) -> None:
    store = SQLRunStore(store_url)
    assert store.claim("a", "w1", 60)
    store.release("a", "w2")  # not w2's claim: nothing happens
    assert not store.claim("a", "w2", 60)
    store.release("a", "w1")
    assert store.claim("a", "w2", 60)


def test_store_errors_are_one_line_and_name_the_store(tmp_path: Path) -> None:
    with pytest.raises(MultiFairError, match="expected `store` to be a database URL"):
        SQLRunStore("")
    with pytest.raises(MultiFairError, match="expected `store` to be a database URL, got 'not a url'"):
        SQLRunStore("not a url")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (the `store` extra) is not installed")
    url = f"postgresql://someone:secret@/nowhere?host={tmp_path}&port=1"
    with pytest.raises(MultiFairError) as caught:
        SQLRunStore(url)
    message = str(caught.value)
    assert "\n" not in message and "cannot create its tables" in message and "secret" not in message


# -- whole comparisons sharing one store
def _start(tmp_path: Path, name: str, url: str, hang_at: int | None = None) -> subprocess.Popen:
    spec = {
        "config": DOCUMENT,
        "output": str(tmp_path / name),
        "store": url,
        "lease_s": LEASE_S,
        "log": str(tmp_path / f"{name}.log"),
        "hang_at": hang_at,
    }
    (tmp_path / f"{name}.json").write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path / f"{name}.json")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=400)
    assert process.returncode == 0, out
    return out


def _log(tmp_path: Path, name: str) -> tuple[list[str], list[str]]:
    path = tmp_path / f"{name}.log"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [x[6:] for x in lines if x.startswith("start ")], [x[5:] for x in lines if x.startswith("done ")]


def test_two_workers_run_every_run_exactly_once_and_the_leaderboard_equals_a_single_machine_one(
    postgres_url: str, tmp_path: Path
) -> None:
    import optuna
    import sqlalchemy as sa
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    workers = [_start(tmp_path, name, postgres_url) for name in ("a", "b")]
    for worker in workers:
        _wait(worker)
    started = {name: _log(tmp_path, name)[0] for name in ("a", "b")}
    assert len(started["a"]) + len(started["b"]) == RUNS  # every run trained once, by one worker
    assert not set(started["a"]) & set(started["b"])
    store = SQLRunStore(postgres_url)
    rows = list(store)
    assert sorted(r["key"] for r in rows) == sorted(started["a"] + started["b"])
    tags = {name: {r["worker"] for r in rows if r["key"] in started[name]} for name in ("a", "b")}
    for name in ("a", "b"):  # each row names the worker that trained it
        assert len(tags[name]) == (1 if started[name] else 0)
    assert not tags["a"] & tags["b"]

    config = CompareConfig.from_dict(DOCUMENT)
    shared = compare(config, tmp_path / "report", store=postgres_url, run=False, progress=False, log=print)
    assert shared["complete"] and shared["store"]["runs"] == RUNS and shared["store"]["claimed_now"] == 0
    # the same runs on a single machine: the rows in runs.jsonl, the studies in the journal file
    single = tmp_path / "single"
    local = RunStore(single / "runs.jsonl")
    for row in rows:
        local.append(row)
    journal = JournalStorage(JournalFileBackend(str(single / "optuna.journal")))
    source = optuna.storages.RDBStorage(postgres_url, engine_kwargs={"poolclass": sa.pool.NullPool})
    for summary in optuna.get_all_study_summaries(source):
        optuna.copy_study(
            from_study_name=summary.study_name,
            from_storage=source,
            to_storage=journal,
            to_study_name=summary.study_name,
        )
    alone = compare(config, single, run=False, progress=False, log=print)
    shared.pop("store"), alone.pop("store")
    assert json.dumps(shared, sort_keys=True) == json.dumps(alone, sort_keys=True)
    shared_md = (tmp_path / "report" / "leaderboard.md").read_text(encoding="utf-8")
    assert shared_md == (single / "leaderboard.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("hang_at", [3, 5], ids=["in-a-tuning-trial", "in-a-final-run"])
def test_a_killed_worker_loses_nothing_and_repeats_nothing(
    postgres_url: str, tmp_path: Path, hang_at: int
) -> None:
    # worker a trains runs 1..hang_at-1 (erm's 2 final runs, then groupdro's trials, then its final runs)
    # and hangs at run hang_at, holding its claim; it is killed there, and worker b finishes the comparison
    first = _start(tmp_path, "a", postgres_url, hang_at=hang_at)
    deadline = time.monotonic() + 300
    while len(_log(tmp_path, "a")[0]) < hang_at:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
        time.sleep(0.5)
    config = CompareConfig.from_dict(DOCUMENT)
    partial = compare(config, tmp_path / "report", store=postgres_url, run=False, progress=False, log=print)
    assert not partial["complete"] and partial["store"]["runs"] == hang_at - 1
    assert partial["store"]["claimed_now"] == 1  # the run worker a is in
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)  # also closes its output pipe
    started_a, done_a = _log(tmp_path, "a")
    hung = started_a[-1]
    assert len(done_a) == hang_at - 1 and hung not in done_a

    _wait(_start(tmp_path, "b", postgres_url))
    started_b, done_b = _log(tmp_path, "b")
    rows = list(SQLRunStore(postgres_url))
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == RUNS  # nothing lost
    assert not set(done_a) & set(started_b)  # nothing finished by a ran again
    assert sorted(keys) == sorted(done_a + done_b) and len(started_b) == len(done_b)
    if hang_at == 5:
        assert hung in done_b  # the final run a was in: taken over after its claim expired
    else:
        assert len(done_b) == RUNS - (hang_at - 1)  # a's trial was replaced by a new one (same budget)
    final = compare(config, tmp_path / "report", store=postgres_url, run=False, progress=False, log=print)
    assert final["complete"] and final["store"]["claimed_now"] == 0


def test_an_unreachable_database_is_a_one_line_error_and_stores_no_unfinished_run(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import sqlalchemy as sa

    database = sa.engine.make_url(postgres_url).database
    admin = sa.create_engine(
        postgres_url.replace(f"/{database}?", "/postgres?"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )

    def refuse_connections(allow: bool) -> None:
        with admin.connect() as connection:
            connection.execute(sa.text(f"ALTER DATABASE {database} ALLOW_CONNECTIONS {str(allow).lower()}"))
            if not allow:
                connection.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": database},
                )

    real = task_module.execute
    trained: list[str] = []

    def execute(task):
        row = real(task)
        trained.append(task["key"])
        if len(trained) == 3:  # the database goes away while run 3 trains: it is never stored
            refuse_connections(False)
        return row

    monkeypatch.setattr(task_module, "execute", execute)
    args = ["compare", "--config", str(tmp_path / "compare.yaml"), "--store", postgres_url, "--lease", "3"]
    (tmp_path / "compare.yaml").write_text(json.dumps(DOCUMENT), encoding="utf-8")
    code = main([*args, "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("multifair compare: error: ") and database in err
    refuse_connections(True)
    admin.dispose()
    stored = [r["key"] for r in SQLRunStore(postgres_url)]
    assert stored == trained[:2]  # run 3 finished training but was never stored: it is not done
    monkeypatch.setattr(task_module, "execute", real)
    assert main([*args, "--output", str(tmp_path / "out"), "--no-progress"]) == 0
    assert (
        sorted(r["key"] for r in SQLRunStore(postgres_url))
        == sorted(set(r["key"] for r in SQLRunStore(postgres_url)))
        and len(SQLRunStore(postgres_url)) == RUNS
    )

"""The append-only store of a comparison: one row per finished run.

Two stores with one interface: :class:`RunStore`, the default, is ``runs.jsonl`` in the output folder
(one JSON line per run); :class:`SQLRunStore` (``--store URL``) is a database that the workers of
several machines share, and hands each run to one worker (:meth:`SQLRunStore.claim`).
:func:`open_run_store` picks one.

A row is written (flushed and synced, or committed) when its run has finished, and only then; a run
that was interrupted leaves no row and runs again when the comparison resumes, a run that has a row
never runs again. Each row holds its ``key`` (phase, data set, arm, seed or tuning configuration, config
hash), the metrics, the timings, the versions that produced it and the ``worker`` that ran it. A torn
last line of ``runs.jsonl`` (the process killed while writing it) is cut off when the store is opened
again; any other line that does not parse is an error naming the line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from monai_multifair.engine.outputs import json_ready
from monai_multifair.errors import MultiFairError

__all__ = ["RunStore", "SQLRunStore", "config_hash", "open_run_store", "schema_lock"]


def config_hash(document: Mapping[str, Any]) -> str:
    """A short, stable hash of a plain document (sorted keys, JSON)."""
    text = json.dumps(json_ready(document), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RunStore:
    """``runs.jsonl`` in a comparison's output folder.

    Args:
        path: the file (created on the first append).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        if tail:  # no newline after the last line: a torn write of a run that will run again
            with open(self.path, "r+b") as handle:
                handle.truncate(len(data) - len(tail))
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise MultiFairError(f"{self.path}: line {number} is not a JSON row ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                raise MultiFairError(f"{self.path}: line {number} has no `key`")
            self._rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._rows.values()))

    def get(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one finished run (its ``key`` must be new) and sync it to disk."""
        key = row.get("key")
        if not isinstance(key, str):
            raise MultiFairError(f"a store row needs a string `key`, got {key!r}")
        if key in self._rows:
            raise MultiFairError(f"run {key!r} is already in {self.path}: a finished run never runs twice")
        line = json.dumps(json_ready(dict(row)), sort_keys=True, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._rows[key] = json.loads(line)

    def rows(self, **match: Any) -> list[dict[str, Any]]:
        """The rows whose fields equal ``match`` (e.g. ``phase="final", dataset="cohort"``)."""
        return [r for r in self._rows.values() if all(r.get(k) == v for k, v in match.items())]

    # -- claims: one comparison process owns an output folder, so a run is free while it has no row
    def claim(self, key: str, owner: str, lease_s: float) -> bool:
        """``True`` when ``key`` has no row (the comparison's scheduler keeps its own runs in flight)."""
        return key not in self._rows

    def renew(self, owner: str, lease_s: float) -> int:
        """No claims are stored in a file: nothing to renew (0)."""
        return 0

    def release(self, key: str, owner: str) -> None:
        """No claims are stored in a file: nothing to release."""

    def pending(self) -> int:
        """Runs claimed by other workers: none (a file store has one worker)."""
        return 0

    def claimed(self, key: str) -> bool:
        """Whether another worker holds a live claim on ``key``: never (a file store has one worker)."""
        return False

    def finish(self, row: Mapping[str, Any], owner: str | None) -> bool:
        """:meth:`append` (``True``): the interface :class:`SQLRunStore` shares."""
        self.append(row)
        return True


def open_run_store(url: str | None, output: str | Path) -> RunStore | SQLRunStore:
    """The run store of a comparison: ``url`` (a database, :class:`SQLRunStore`) or, by default,
    ``output/runs.jsonl`` (:class:`RunStore`)."""
    if url is None:
        return RunStore(Path(output) / "runs.jsonl")
    return SQLRunStore(url)


def _safe_url(url: str) -> str:
    """``url`` without its password (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: the caller's error says so
        return url


def _reason(error: BaseException) -> str:
    """The first line of a database error (the driver's own message where there is one)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class SQLRunStore:
    """The run store in a database (``--store URL``) that several machines share.

    Holds what ``runs.jsonl`` holds (one row per finished run: key, phase, data set, method, seed,
    config hash, metrics, timings, versions) in the table ``multifair_runs``, and the claims of the runs
    being trained in ``multifair_claims``: a worker claims a run before training it (:meth:`claim`),
    keeps the claim alive while it trains (:meth:`renew`, every ``lease_s / 3`` seconds), and stores the
    row and drops the claim in one transaction (:meth:`finish`). A claim that is not renewed expires
    after ``lease_s`` seconds (the database's clock decides), and the run can then be claimed by another
    worker: a worker that died loses nothing, and a finished run is never trained again.

    PostgreSQL (``postgresql://user:password@host/db``; the driver is psycopg 3, the ``store`` extra:
    ``pip install 'monai-multifair[store]'``) is the database for several machines; SQLite
    (``sqlite:///path.db``) serves several processes on one machine.

    Example::

        store = SQLRunStore("postgresql://multifair@db-host/compare")
        if store.claim(key, owner="host:pid:token", lease_s=120):  # nobody else trains it now
            row = train(key)  # renew(owner, 120) every 40 s meanwhile
            store.finish(row, owner="host:pid:token")  # the row stored, the claim dropped: one transaction

    Args:
        url: a SQLAlchemy database URL.

    Raises:
        MultiFairError: an unsupported URL, a missing driver, or a database that cannot be reached
            (one line: the URL without its password and the driver's reason).
    """

    RUNS = "multifair_runs"
    CLAIMS = "multifair_claims"

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or not url:
            raise MultiFairError(f"expected `store` to be a database URL, got {url!r}")
        self.url = url
        self.where = _safe_url(url)
        try:
            import sqlalchemy as sa

            self._sa = sa
            # no pool: every operation opens and closes its connection, so that nothing is left open
            # when the store is dropped, and a connection lost while a run trains is simply reopened
            self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        except ImportError as err:
            raise MultiFairError(
                f"run store {self.where}: the database driver is not installed ({err}); for PostgreSQL "
                "install the `store` extra (pip install 'monai-multifair[store]')"
            ) from None
        except Exception as err:  # sqlalchemy.exc.ArgumentError: not a URL
            raise MultiFairError(
                f"expected `store` to be a database URL, got {self.where!r}: {_reason(err)}"
            ) from None
        dialect = self.engine.dialect.name
        if dialect not in _NOW:
            raise MultiFairError(
                f"run store {self.where}: expected a postgresql:// or sqlite:// URL, got dialect {dialect!r}"
            )
        self._now = _NOW[dialect]
        with self._db("create its tables"), schema_lock(self.engine) as connection:
            for statement in _SCHEMA:
                connection.execute(sa.text(statement.format(runs=self.RUNS, claims=self.CLAIMS)))

    def __repr__(self) -> str:
        return f"SQLRunStore({self.where!r})"

    @contextlib.contextmanager
    def _db(self, what: str) -> Iterator[None]:
        """Database errors as one-line :class:`MultiFairError` naming the store and what failed."""
        try:
            yield
        except self._sa.exc.SQLAlchemyError as err:
            raise MultiFairError(f"run store {self.where}: cannot {what}: {_reason(err)}") from None

    def _select(self, where: str = "", **params: Any) -> list[dict[str, Any]]:
        sql = f"SELECT document FROM {self.RUNS}{where} ORDER BY finished_at, key"
        with self._db("read the runs"), self.engine.connect() as connection:
            return [json.loads(text) for (text,) in connection.execute(self._sa.text(sql), params)]

    # -- what RunStore offers
    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._db("count the runs"), self.engine.connect() as connection:
            return int(connection.execute(self._sa.text(f"SELECT COUNT(*) FROM {self.RUNS}")).scalar_one())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._select())

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._select(" WHERE key = :key", key=key)
        return rows[0] if rows else None

    def rows(self, **match: Any) -> list[dict[str, Any]]:
        """The rows whose fields equal ``match`` (e.g. ``phase="final", dataset="cohort"``)."""
        return [r for r in self._select() if all(r.get(k) == v for k, v in match.items())]

    def append(self, row: Mapping[str, Any]) -> None:
        """Store one finished run (its ``key`` must be new)."""
        key = _key_of(row)
        if not self.finish(row, owner=None):
            raise MultiFairError(f"run {key!r} is already in {self.where}: a finished run never runs twice")

    # -- claims
    def claim(self, key: str, owner: str, lease_s: float) -> bool:
        """Claim the run ``key`` for ``owner`` for ``lease_s`` seconds: ``True`` when it is not stored and
        nobody else holds a live claim on it (an expired claim is taken over), atomically."""
        sa = self._sa
        expires = f"{self._now} + :lease"
        with self._db(f"claim run {key!r}"), self.engine.begin() as connection:
            taken = connection.execute(
                sa.text(
                    f"INSERT INTO {self.CLAIMS} (key, owner, expires) VALUES (:key, :owner, {expires}) "
                    f"ON CONFLICT (key) DO UPDATE SET owner = :owner, expires = {expires} "
                    f"WHERE {self.CLAIMS}.expires < {self._now} OR {self.CLAIMS}.owner = :owner"
                ),
                {"key": key, "owner": owner, "lease": float(lease_s)},
            )
            if taken.rowcount != 1:  # a live claim of another worker
                return False
            # checked after the claim: a run stored by a worker that finished meanwhile is seen here
            stored = connection.execute(sa.text(f"SELECT 1 FROM {self.RUNS} WHERE key = :key"), {"key": key})
            if stored.first() is not None:
                connection.execute(sa.text(f"DELETE FROM {self.CLAIMS} WHERE key = :key"), {"key": key})
                return False
            return True

    def renew(self, owner: str, lease_s: float) -> int:
        """Extend every claim of ``owner`` by ``lease_s`` seconds from now; returns how many."""
        with self._db("renew its claims"), self.engine.begin() as connection:
            result = connection.execute(
                self._sa.text(
                    f"UPDATE {self.CLAIMS} SET expires = {self._now} + :lease WHERE owner = :owner"
                ),
                {"owner": owner, "lease": float(lease_s)},
            )
            return int(result.rowcount)

    def release(self, key: str, owner: str) -> None:
        """Drop ``owner``'s claim on ``key`` (an interrupted run: another worker may claim it at once)."""
        with self._db(f"release run {key!r}"), self.engine.begin() as connection:
            connection.execute(
                self._sa.text(f"DELETE FROM {self.CLAIMS} WHERE key = :key AND owner = :owner"),
                {"key": key, "owner": owner},
            )

    def claimed(self, key: str) -> bool:
        """Whether a worker holds a live (unexpired) claim on ``key``."""
        with self._db(f"read the claim of run {key!r}"), self.engine.connect() as connection:
            found = connection.execute(
                self._sa.text(f"SELECT 1 FROM {self.CLAIMS} WHERE key = :key AND expires >= {self._now}"),
                {"key": key},
            ).first()
            return found is not None

    def pending(self) -> int:
        """How many runs are claimed by a live worker (claims not yet expired) and not yet stored."""
        with self._db("count the claims"), self.engine.connect() as connection:
            return int(
                connection.execute(
                    self._sa.text(f"SELECT COUNT(*) FROM {self.CLAIMS} WHERE expires >= {self._now}")
                ).scalar_one()
            )

    def finish(self, row: Mapping[str, Any], owner: str | None) -> bool:
        """Store a finished run and drop its claim in one transaction. ``False`` (nothing written) when
        the run is stored already (by a worker that took over an expired claim of ``owner``)."""
        key = _key_of(row)
        text = json.dumps(json_ready(dict(row)), sort_keys=True, allow_nan=False)
        document = json.loads(text)
        values = {
            "key": key,
            "document": text,
            "phase": document.get("phase"),
            "dataset": document.get("dataset"),
            "method": document.get("method"),
            "seed": document.get("seed"),
            "config_hash": document.get("config_hash"),
            "worker": document.get("worker"),
        }
        sa = self._sa
        with self._db(f"store run {key!r}"), self.engine.begin() as connection:
            inserted = connection.execute(
                sa.text(
                    f"INSERT INTO {self.RUNS} (key, document, phase, dataset, method, seed, config_hash, worker, "
                    f"finished_at) VALUES (:key, :document, :phase, :dataset, :method, :seed, :config_hash, "
                    f":worker, {self._now}) ON CONFLICT (key) DO NOTHING"
                ),
                values,
            ).rowcount
            connection.execute(sa.text(f"DELETE FROM {self.CLAIMS} WHERE key = :key"), {"key": key})
        return inserted == 1


def _key_of(row: Mapping[str, Any]) -> str:
    key = row.get("key")
    if not isinstance(key, str):
        raise MultiFairError(f"a store row needs a string `key`, got {key!r}")
    return key


#: the database's clock in seconds since the epoch (claims expire by it, not by the workers' clocks)
_NOW = {
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS {runs} (key TEXT PRIMARY KEY, document TEXT NOT NULL, phase TEXT, dataset TEXT, "
    "method TEXT, seed INTEGER, config_hash TEXT, worker TEXT, finished_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {claims} (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "expires DOUBLE PRECISION NOT NULL)",
)


@contextlib.contextmanager
def schema_lock(engine: Any) -> Iterator[Any]:
    """A connection (in a transaction) that holds the schema lock: workers that start at the same moment
    create the tables one after the other (PostgreSQL: an advisory lock; SQLite locks the file)."""
    import sqlalchemy as sa

    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK})
        yield connection


_SCHEMA_LOCK = 0x6D66_6169  # "mfai"

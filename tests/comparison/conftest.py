"""A throwaway PostgreSQL server for the shared run store's tests.

``postgres_server`` (one per test session) runs ``initdb`` and ``pg_ctl start`` from the Debian
packages (``/usr/lib/postgresql/<version>/bin``, or ``initdb`` on ``PATH``) in a temporary folder,
listening on a unix socket in that folder only (no TCP port), and stops and removes it afterwards.
The server refuses to run as root: under root (CI) it runs as the ``postgres`` user (or ``nobody``)
through ``runuser``. ``postgres_url`` gives each test a fresh database on it. Without a server
binary the tests that use them are skipped, saying so, unless ``MULTIFAIR_REQUIRE_POSTGRES=1`` (set by
``.ci/run``): then they fail, so that CI cannot pass without running them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PORT = 5432  # only names the socket file in the server's own folder: never a TCP port


def _missing(reason: str) -> None:
    """Skip (or, where CI requires the server, fail) for want of ``reason``."""
    if os.environ.get("MULTIFAIR_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"MULTIFAIR_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


def _bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _as_server_user() -> tuple[list[str], str | None]:
    """The command prefix that runs the server's programs, and the user they run as."""
    if os.geteuid() != 0:
        return [], None
    import pwd

    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("runuser") is None:
            _missing("PostgreSQL refuses to run as root, and `runuser` is missing to run it as another user")
        return ["runuser", "-u", user, "--"], user
    _missing("PostgreSQL refuses to run as root, and there is no `postgres` or `nobody` user")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The socket folder of a PostgreSQL server started for this test session."""
    bin_dir = _bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        _missing(
            "no PostgreSQL server binary (initdb, pg_ctl) found in /usr/lib/postgresql/*/bin or on PATH: "
            "apt-get install postgresql"
        )
    prefix, user = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="multifair-pg-"))
    data = folder / "data"
    if user is not None:
        shutil.chown(folder, user=user)
        folder.chmod(0o755)
    run = lambda *command: subprocess.run(  # noqa: E731
        [*prefix, *map(str, command)], check=True, capture_output=True, text=True, timeout=120
    )
    try:
        run(bin_dir / "initdb", "-D", data, "-U", "multifair", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-k {folder} -c listen_addresses='' -p {PORT} -c fsync=off"
        run(bin_dir / "pg_ctl", "start", "-w", "-D", data, "-l", folder / "server.log", "-o", options)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(
            f"starting the test PostgreSQL server failed: {err.stderr or err.stdout}"
        ) from None
    try:
        yield str(folder)
    finally:
        run(bin_dir / "pg_ctl", "stop", "-D", data, "-m", "fast", "-w")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a fresh, empty database on the session's server."""
    import sqlalchemy as sa

    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("the PostgreSQL driver psycopg (the `store` extra) is not installed")
    name = f"test_{uuid.uuid4().hex[:12]}"
    server = f"postgresql://multifair@/postgres?host={postgres_server}&port={PORT}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"postgresql://multifair@/{name}?host={postgres_server}&port={PORT}"

"""A real PostgreSQL server on a free loopback port with a temporary data directory.

``postgres`` (session-scoped) runs initdb into a temp dir and starts the server listening on
127.0.0.1 only (its unix socket in the temp dir), as the ``postgres`` system user when the tests run
as root (PostgreSQL refuses root); it creates the audit's owner role and app role with passwords and
stops the server (``pg_ctl stop -m fast``) and removes the dir at the end. ``postgres_audit``
(per test) gives a fresh database owned by the owner role, migrated, with the app role's grants from
``pneumonia.audit.app_role_grants``. Where the binaries are missing the tests skip with how to
install them; with CI=true they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.process import free_port

START_TIMEOUT_S = 120
INSTALL_HINT = "install PostgreSQL: apt-get install postgresql (binaries in /usr/lib/postgresql/*/bin)"
OWNER, APP = "audit_owner", "audit_app"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"{reason}; {INSTALL_HINT}")


@dataclass
class PostgresServer:
    port: int
    folder: Path
    passwords: dict[str, str]

    def url(self, role: str = "postgres", database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://{role}:{self.passwords[role]}@127.0.0.1:{self.port}/{database}"

    def execute(self, *statements: str, role: str = "postgres", database: str = "postgres") -> None:
        """Run statements as ``role`` (autocommit: CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(self.url(role, database), autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)


@dataclass
class PostgresAudit:
    """One fresh audit database: URLs for the superuser, the owner (migrations) and the app role."""

    server: PostgresServer
    database: str

    @property
    def superuser_url(self) -> str:
        return self.server.url("postgres", self.database)

    @property
    def owner_url(self) -> str:
        return self.server.url(OWNER, self.database)

    @property
    def app_url(self) -> str:
        return self.server.url(APP, self.database)

    def execute(self, *statements: str, role: str = "postgres") -> None:
        self.server.execute(*statements, role=role, database=self.database)


def _as_postgres(folder: Path) -> list[str]:
    """The command prefix that runs a server binary as the ``postgres`` system user when we are root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        _missing("running as root needs runuser to start PostgreSQL as the postgres user")
    try:
        shutil.chown(folder, user="postgres", group="postgres")
    except LookupError:
        _missing("running as root needs a 'postgres' system user")
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str], what: str, folder: Path) -> None:
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        log = folder / "server.log"
        detail = (done.stderr + (log.read_text(errors="replace") if log.exists() else "")).strip()
        raise RuntimeError(f"{what} failed ({done.returncode}): {detail[-2000:]}")


def _wait_until_accepting(server: PostgresServer) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=5):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _start(bin_dir: Path, folder: Path) -> PostgresServer:
    prefix = _as_postgres(folder)
    passwords = {role: secrets.token_hex(12) for role in ("postgres", OWNER, APP)}
    pwfile = folder / "pwfile"
    pwfile.write_text(passwords["postgres"] + "\n")
    if prefix:
        shutil.chown(pwfile, user="postgres", group="postgres")
    data = folder / "data"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}"]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"]
    _run(prefix + initdb, "initdb", folder)
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -c fsync=off"
    start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options]
    _run(prefix + [*start, "-w", "-t", str(START_TIMEOUT_S), "start"], "pg_ctl start", folder)
    server = PostgresServer(port, folder, passwords)
    _wait_until_accepting(server)
    server.execute(
        f"CREATE ROLE {OWNER} LOGIN PASSWORD '{passwords[OWNER]}'",
        f"CREATE ROLE {APP} LOGIN PASSWORD '{passwords[APP]}'",
    )
    return server


def _stop(bin_dir: Path, folder: Path) -> None:
    if (folder / "data" / "postmaster.pid").exists():
        stop = [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres(folder) + stop, cwd=folder, capture_output=True, timeout=START_TIMEOUT_S)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        _missing("PostgreSQL's initdb was not found under /usr/lib/postgresql/*/bin")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (pip install -r requirements.txt)")
    folder = Path(tempfile.mkdtemp(prefix="pneumonia-postgres-"))
    try:
        yield _start(bin_dir, folder)
    finally:
        _stop(bin_dir, folder)


@pytest.fixture
def postgres_audit(postgres: PostgresServer) -> Iterator[PostgresAudit]:
    """A fresh database owned by the owner role, migrated by it, the app role granted read + append."""
    from pneumonia.audit import AuditLog, app_role_grants

    name = f"audit_{secrets.token_hex(6)}"
    postgres.execute(f"CREATE DATABASE {name} OWNER {OWNER}")
    audit = PostgresAudit(postgres, name)
    AuditLog(audit.owner_url).close()  # the owner creates the tables (Alembic)
    audit.execute(*app_role_grants(APP), role=OWNER)
    yield audit
    with contextlib.suppress(Exception):
        postgres.execute(f"DROP DATABASE {name} WITH (FORCE)")

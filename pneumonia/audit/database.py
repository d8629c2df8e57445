"""Where the audit trail lives and how to reach it: the URL, engines, migrations, and messages that
never show a password.

SQLite is the default (one file, ``$PNEUMONIA_AUDIT_DB`` or the user's data directory);
``$PNEUMONIA_AUDIT_URL`` (``sqlite:///...`` or ``postgresql://...``) points it elsewhere. PostgreSQL
URLs use psycopg 3 (``postgresql://`` is read as ``postgresql+psycopg://``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from platformdirs import user_data_dir
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

PATH_ENV_VAR = "PNEUMONIA_AUDIT_DB"
URL_ENV_VAR = "PNEUMONIA_AUDIT_URL"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key ("PNAUDIT1") held while appending to the chain or migrating
APPEND_LOCK_KEY = 0x504E_4155_4449_5431
# execution option that makes a SQLite transaction take the write lock at BEGIN (BEGIN IMMEDIATE)
SQLITE_IMMEDIATE = "pneumonia_sqlite_immediate"
SQLITE_BUSY_TIMEOUT_S = 60
_DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite", "postgresql": "postgresql+psycopg"}
_DRIVERS |= {"postgres": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}


class AuditUnavailable(RuntimeError):
    """The audit database cannot be reached, opened or written; the message names it without credentials."""


def default_path() -> Path:
    """``$PNEUMONIA_AUDIT_DB`` or the user's data directory (never the repository)."""
    env = os.environ.get(PATH_ENV_VAR)
    return Path(env) if env else Path(user_data_dir("pneumonia-review", appauthor=False)) / "audit.sqlite"


def default_url() -> str:
    """``$PNEUMONIA_AUDIT_URL`` if set, else the SQLite file at :func:`default_path`."""
    return os.environ.get(URL_ENV_VAR, "").strip() or f"sqlite:///{default_path()}"


def resolve_url(target: str | Path | None = None) -> URL:
    """A SQLAlchemy URL from a URL, a SQLite file path, or (None) the configured default."""
    if target is None:
        target = default_url()
    if isinstance(target, Path) or "://" not in str(target):
        return URL.create("sqlite", database=str(Path(target)))
    if str(target).startswith("sqlite:///") and "?" not in str(target):  # a file path, taken as it is
        return URL.create("sqlite", database=str(target)[len("sqlite:///") :])
    try:
        url = make_url(str(target))
    except (sa.exc.ArgumentError, ValueError):
        # the parser's own message repeats the URL, password included: say it in our words
        raise AuditUnavailable(
            "The audit database setting is not a valid URL; expected sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE."
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise AuditUnavailable(
            f"The audit trail runs on SQLite or PostgreSQL, not {url.get_backend_name()!r} "
            "(use sqlite:///PATH or postgresql://...)."
        )
    url = url.set(drivername=driver)
    if driver == "sqlite" and not url.database:
        raise AuditUnavailable("The audit database URL names no SQLite file (sqlite:///PATH).")
    return url


def redacted(url: URL) -> str:
    """The URL as it may appear in a message or log: the password replaced by ***."""
    return url.render_as_string(hide_password=True)


def _reason(error: BaseException, url: URL) -> str:
    """The driver's first line of explanation, with the password struck out should it appear."""
    original = getattr(error, "orig", None) or error
    text = (str(original).strip().splitlines() or [type(original).__name__])[0]
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


@contextmanager
def database_errors(url: URL, doing: str) -> Iterator[None]:
    """Turn a driver error into :class:`AuditUnavailable` with words a reader understands.

    The original exception is not chained: SQLAlchemy's text repeats the statement's parameters.
    """
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        raise AuditUnavailable(
            f"The audit trail's database ({redacted(url)}) cannot be reached while {doing}: "
            f"{_reason(error, url)}. Reviews cannot be saved until it is back; please tell IT."
        ) from None
    except sa.exc.DBAPIError as error:
        raise AuditUnavailable(
            f"The audit trail's database ({redacted(url)}) refused {doing}: {_reason(error, url)}."
        ) from None


def make_engine(url: URL) -> Engine:
    """An engine for the audit database; SQLite transactions are begun by us (see :data:`SQLITE_IMMEDIATE`)."""
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    path = Path(url.database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AuditUnavailable(f"The audit trail's folder {path.parent} cannot be created: {error.strerror}.") from None
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_manual_transactions)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_manual_transactions(dbapi_connection, _record) -> None:
    # pysqlite's own BEGIN handling is switched off so that ours (possibly IMMEDIATE) is the one used
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: sa.Connection) -> None:
    immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction that holds the one right to append: PostgreSQL's transaction-level advisory lock,
    SQLite's write lock (BEGIN IMMEDIATE). Reading the last hash and inserting the next row inside it
    makes writers from any number of processes form one linear chain."""
    with engine.connect() as connection:
        connection.execution_options(**{SQLITE_IMMEDIATE: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
            yield connection


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a no-op when it is there already).

    Runs in one transaction under a lock, so processes opening a new database at once do not race.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()

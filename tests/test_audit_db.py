"""The audit trail in its database, SQLite and a real PostgreSQL: the hash chain and verify, changes
made behind the app's back, the app role's refusals, several writer processes, the date-range export,
an old SQLite file migrated, and messages that never show a password."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pneumonia.audit import _SCHEMA, AuditLog, AuditUnavailable, chain, resolve_url
from tests.test_audit_report import _record

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ["sqlite", "postgresql"]
CLI_TIMEOUT_S = 300


@dataclass
class AuditDatabase:
    """One empty, migrated audit database and what a test does to it from outside the app."""

    engine: str
    app_url: str  # what the app connects with
    tamper: Callable[[str], None]  # a superuser's SQL with the append-only trigger switched off
    as_app: Callable[[str], None]  # SQL as the app's own role (or the SQLite file's user)


def _sqlite_database(path: Path) -> AuditDatabase:
    url = f"sqlite:///{path}"
    AuditLog(url).close()

    def tamper(statement: str) -> None:
        with sqlite3.connect(path) as db:  # SQLite has no roles: whoever can write the file drops the trigger
            db.execute("DROP TRIGGER IF EXISTS reviews_no_update")
            db.execute("DROP TRIGGER IF EXISTS reviews_no_delete")
            db.execute(statement)

    def as_app(statement: str) -> None:
        with sqlite3.connect(path) as db:
            db.execute(statement)

    return AuditDatabase("sqlite", url, tamper, as_app)


def _postgres_database(audit) -> AuditDatabase:
    def tamper(statement: str) -> None:
        audit.execute(
            "ALTER TABLE reviews DISABLE TRIGGER reviews_append_only",
            statement,
            "ALTER TABLE reviews ENABLE TRIGGER reviews_append_only",
        )

    def as_app(statement: str) -> None:
        audit.execute(statement, role="audit_app")

    return AuditDatabase("postgresql", audit.app_url, tamper, as_app)


@pytest.fixture(params=ENGINES)
def audit_db(request, tmp_path) -> AuditDatabase:
    if request.param == "sqlite":
        return _sqlite_database(tmp_path / "shared-audit.sqlite")
    return _postgres_database(request.getfixturevalue("postgres_audit"))


def _clock(start: datetime = datetime(2026, 3, 1, 8, 0, tzinfo=UTC), step=timedelta(hours=7)):
    times = (start + i * step for i in range(10_000))
    return lambda: next(times)


def _fill(url: str, n: int, clock=None) -> AuditLog:
    log = AuditLog(url, clock=clock or _clock())
    for i in range(n):
        _record(log, probability=0.1 * i + 1e-9, reader=f"Reader {i}", reader_id=f"sub-{i}", reader_verified=i % 2)
    return log


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pneumonia.audit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def _verify(url: str) -> tuple[dict, subprocess.CompletedProcess]:
    done = _cli("verify", "--url", url)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)
    return json.loads(lines[0]), done


def test_an_untouched_chain_verifies(audit_db):
    _fill(audit_db.app_url, 5).close()
    verdict, done = _verify(audit_db.app_url)
    assert verdict == {"rows": 5, "ok": True, "first_bad_row": None}
    assert done.returncode == 0


def test_a_row_altered_by_a_superuser_is_found(audit_db):
    _fill(audit_db.app_url, 5).close()
    audit_db.tamper("UPDATE reviews SET reader_agrees = NOT reader_agrees WHERE id = 3")
    verdict, done = _verify(audit_db.app_url)
    assert verdict == {"rows": 5, "ok": False, "first_bad_row": 3}
    assert done.returncode == 1 and "row 3 was changed" in done.stderr


def test_a_removed_row_is_found(audit_db):
    _fill(audit_db.app_url, 5).close()
    audit_db.tamper("DELETE FROM reviews WHERE id = 2")
    verdict, done = _verify(audit_db.app_url)
    assert verdict == {"rows": 4, "ok": False, "first_bad_row": 2}
    assert done.returncode == 1 and "row 2 is missing" in done.stderr


def test_a_row_inserted_out_of_order_is_found(audit_db):
    log = _fill(audit_db.app_url, 4)
    rows = log.recent()
    log.close()
    forged = rows[rows["id"] == 4].iloc[0].to_dict() | {"id": 5, "prev_hash": rows[rows["id"] == 2].iloc[0]["row_hash"]}
    forged["row_hash"] = chain.row_hash(forged)  # a well-formed row that claims to follow row 2
    columns = ", ".join(forged)
    values = ", ".join(_sql_literal(v) for v in forged.values())
    audit_db.tamper(f"INSERT INTO reviews ({columns}) VALUES ({values})")
    verdict, done = _verify(audit_db.app_url)
    assert verdict == {"rows": 5, "ok": False, "first_bad_row": 5}
    assert done.returncode == 1


def _sql_literal(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def test_the_app_cannot_update_or_delete(audit_db):
    _fill(audit_db.app_url, 2).close()
    refusal = "append-only" if audit_db.engine == "sqlite" else "permission denied"
    for statement in ("UPDATE reviews SET label = 'NORMAL'", "DELETE FROM reviews WHERE id = 1"):
        with pytest.raises(Exception, match=refusal):
            audit_db.as_app(statement)
    verdict, _ = _verify(audit_db.app_url)
    assert verdict == {"rows": 2, "ok": True, "first_bad_row": None}


def test_postgres_refuses_changes_even_from_the_owner(postgres_audit):
    import psycopg

    _fill(postgres_audit.app_url, 2).close()
    for statement in ("UPDATE reviews SET label = 'NORMAL'", "DELETE FROM reviews", "TRUNCATE reviews"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            postgres_audit.execute(statement, role="audit_owner")


def test_writers_in_several_processes_make_one_chain(audit_db):
    bench = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "audit_load.py"), "--url", audit_db.app_url, "--writers", "4"]
        + ["--reads", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert bench.returncode == 0, bench.stderr
    figures = json.loads(bench.stdout.splitlines()[-1])
    assert figures["rows"] == 40 and figures["errors"] == []
    assert "***" in figures["database"] or audit_db.engine == "sqlite"  # the password never printed
    verdict, _ = _verify(audit_db.app_url)
    assert verdict == {"rows": 40, "ok": True, "first_bad_row": None}
    readers = AuditLog(audit_db.app_url).recent(100)
    assert readers.groupby("reader_id").size().to_dict() == {f"bench-subject-{w}": 10 for w in range(4)}


def test_export_a_date_range(audit_db, tmp_path):
    _fill(audit_db.app_url, 9).close()  # every 7 hours from 2026-03-01 08:00 UTC: days 1, 1, 1, 2, 2, 2, 3, 3, 3
    out = tmp_path / "export" / "march.csv"
    done = _cli("export", "--from", "2026-03-02", "--to", "2026-03-03", "--url", audit_db.app_url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["4", "5", "6", "7", "8", "9"]
    assert all(r["time"][:10] in {"2026-03-02", "2026-03-03"} for r in rows)
    assert list(rows[0])[:3] == ["id", "time", "image_sha256"] and "row_hash" in rows[0] and "reader_id" in rows[0]
    assert _cli("export", "--from", "2026-03-03", "--to", "2026-03-02", "--out", str(out)).returncode != 0
    assert "not a date" in _cli("export", "--from", "March", "--to", "2026-03-02", "--out", str(out)).stderr


def test_both_engines_hash_the_same_rows_alike(tmp_path, postgres_audit):
    hashes = []
    for url in (f"sqlite:///{tmp_path / 'same.sqlite'}", postgres_audit.app_url):
        log = AuditLog(url, clock=_clock())
        _record(log, probability=0.1 + 0.2, threshold=1 / 3, comment="ümlaut, 'quotes'", reader="Dr. Ä")
        _record(log, probability=0.123456789012345678, reader_agrees=False, reader_id="x", reader_verified=True)
        hashes.append(list(log.recent()["row_hash"]))
        log.close()
    assert hashes[0] == hashes[1]


def test_reader_identity_is_recorded(tmp_path):
    log = AuditLog(tmp_path / "who.sqlite")
    _record(log, reader="Dr. Jane Roe", reader_id="00u1abcd", reader_verified=True)
    _record(log, reader="JR")
    rows = log.recent()
    assert list(rows["reader_verified"]) == [False, True] and list(rows["reader_id"]) == ["", "00u1abcd"]
    with pytest.raises(ValueError, match="subject"):
        _record(log, reader="Dr. Jane Roe", reader_verified=True)
    with pytest.raises(ValueError, match="finite"):
        _record(log, probability=float("nan"))


def test_an_old_sqlite_file_migrates_keeping_every_row(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the pre-Alembic DDL and its rows, with the reader column added later
        db.executescript(_SCHEMA)
        for i in range(3):
            db.execute(
                "INSERT INTO reviews (time, image_sha256, model_version, operating_point, threshold, heatmap_method, "
                "probability, label, reader_agrees, comment) VALUES (?, ?, 'v0', 'balanced', 0.5, 'gradcam', ?, "
                "'PNEUMONIA', ?, 'old')",
                (f"2025-01-0{i + 1}T10:00:00+00:00", f"{i}" * 64, 0.3 * i, i % 2),
            )
        db.execute("ALTER TABLE reviews ADD COLUMN reader TEXT NOT NULL DEFAULT ''")
    log = AuditLog(path)
    _record(log, reader="CD")
    rows = log.recent().sort_values("id")
    assert list(rows["id"]) == [1, 2, 3, 4]
    assert list(rows["time"])[:3] == [f"2025-01-0{i}T10:00:00+00:00" for i in (1, 2, 3)]
    assert list(rows["reader_agrees"])[:3] == [False, True, False] and list(rows["reader"]) == ["", "", "", "CD"]
    assert not rows["reader_verified"].any()
    assert _verify(f"sqlite:///{path}")[0] == {"rows": 4, "ok": True, "first_bad_row": None}
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM reviews WHERE id = 1")


def test_urls_and_the_environment(tmp_path, monkeypatch):
    assert resolve_url("postgresql://u:p@h:5432/d").drivername == "postgresql+psycopg"
    assert resolve_url(tmp_path / "x.sqlite").database == str(tmp_path / "x.sqlite")
    monkeypatch.setenv("PNEUMONIA_AUDIT_URL", f"sqlite:///{tmp_path / 'by-url.sqlite'}")
    assert AuditLog().path == tmp_path / "by-url.sqlite"
    for bad in ("mysql://u:secret@h/d", "postgresql://u:secret@h:notaport/d"):
        with pytest.raises(AuditUnavailable) as refused:
            resolve_url(bad)
        assert "secret" not in str(refused.value)


def test_an_unreachable_database_is_named_without_its_password(postgres, tmp_path):
    closed = f"postgresql://audit_app:{postgres.passwords['audit_app']}@127.0.0.1:{_closed_port()}/audit"
    wrong = postgres.url("audit_app").replace(postgres.passwords["audit_app"], "not-the-password")
    for url, password in ((closed, postgres.passwords["audit_app"]), (wrong, "not-the-password")):
        with pytest.raises(AuditUnavailable, match="cannot be reached") as refused:
            AuditLog(url)
        assert password not in str(refused.value) and "***" in str(refused.value)
        done = _cli("verify", "--url", url)
        assert done.returncode == 2 and done.stdout == "" and password not in done.stderr
        assert "cannot be reached" in done.stderr


def test_the_app_role_cannot_create_the_tables_and_says_who_can(postgres):
    postgres.execute("CREATE DATABASE audit_unmigrated OWNER audit_owner")
    app_url = postgres.url("audit_app", "audit_unmigrated")
    with pytest.raises(AuditUnavailable, match="database owner runs `python -m pneumonia.audit upgrade"):
        AuditLog(app_url)
    postgres.execute("DROP DATABASE audit_unmigrated WITH (FORCE)")


def test_verify_and_export_do_not_migrate(tmp_path):
    path = tmp_path / "old-unmigrated.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA)
    done = _cli("verify", "--url", f"sqlite:///{path}")
    assert done.returncode == 2 and "upgrade" in done.stderr
    missing = _cli("verify", "--url", f"sqlite:///{tmp_path / 'nowhere.sqlite'}")
    assert missing.returncode == 2 and "no audit trail at" in missing.stderr
    assert not (tmp_path / "nowhere.sqlite").exists()
    assert _cli("upgrade", "--url", f"sqlite:///{path}").returncode == 0
    assert _verify(f"sqlite:///{path}")[0] == {"rows": 0, "ok": True, "first_bad_row": None}


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

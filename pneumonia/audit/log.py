"""Append-only audit trail of reader reviews in SQLite.

Stores the image's SHA-256, never its pixels, file name or any patient identifier. Rows cannot
be updated or deleted (SQLite triggers refuse it).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from platformdirs import user_data_dir

ENV_VAR = "PNEUMONIA_AUDIT_DB"
COLUMNS = (
    "time",
    "image_sha256",
    "model_version",
    "operating_point",
    "threshold",
    "heatmap_method",
    "probability",
    "label",
    "reader_agrees",
    "comment",
    "reader",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    model_version TEXT NOT NULL,
    operating_point TEXT NOT NULL,
    threshold REAL NOT NULL,
    heatmap_method TEXT NOT NULL,
    probability REAL NOT NULL,
    label TEXT NOT NULL,
    reader_agrees INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""
# Columns added after the first release, each with its DDL: an older database gets them on open
# (ALTER TABLE ... ADD COLUMN keeps every row and the append-only triggers).
_MIGRATIONS = {
    "reader": "ALTER TABLE reviews ADD COLUMN reader TEXT NOT NULL DEFAULT ''",
}


def default_path() -> Path:
    """``$PNEUMONIA_AUDIT_DB`` or the user's data directory (never the repository)."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(user_data_dir("pneumonia-review", appauthor=False)) / "audit.sqlite"


class AuditLog:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)
            present = {row[1] for row in db.execute("PRAGMA table_info(reviews)")}
            for column, ddl in _MIGRATIONS.items():
                if column not in present:
                    db.execute(ddl)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(
        self,
        *,
        image_sha256: str,
        model_version: str,
        operating_point: str,
        threshold: float,
        heatmap_method: str,
        probability: float,
        label: str,
        reader_agrees: bool,
        comment: str = "",
        reader: str = "",
    ) -> int:
        """Append one review; returns its row id. ``reader`` is the reader's name or initials."""
        if len(image_sha256) != 64:
            raise ValueError("image_sha256 must be a SHA-256 hex digest")
        row = (
            datetime.now(UTC).isoformat(timespec="seconds"),
            image_sha256,
            model_version,
            operating_point,
            float(threshold),
            heatmap_method,
            float(probability),
            label,
            int(bool(reader_agrees)),
            comment.strip()[:1000],
            reader.strip()[:100],
        )
        with self._lock, self._connect() as db:
            cur = db.execute(
                f"INSERT INTO reviews ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row
            )
            return int(cur.lastrowid)

    def recent(self, limit: int = 100) -> pd.DataFrame:
        with self._connect() as db:
            df = pd.read_sql_query(
                f"SELECT id, {', '.join(COLUMNS)} FROM reviews ORDER BY id DESC LIMIT ?", db, params=(int(limit),)
            )
        df["reader_agrees"] = df["reader_agrees"].astype(bool)
        return df

    def to_csv(self, limit: int = 100_000) -> bytes:
        return self.recent(limit).to_csv(index=False).encode()

    def reviewed(self, image_sha256s: list[str]) -> set[str]:
        """Which of these images already have a review in the trail."""
        if not image_sha256s:
            return set()
        marks = ", ".join("?" * len(image_sha256s))
        with self._connect() as db:
            rows = db.execute(
                f"SELECT DISTINCT image_sha256 FROM reviews WHERE image_sha256 IN ({marks})", image_sha256s
            )
            return {r[0] for r in rows}

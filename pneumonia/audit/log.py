"""Append-only, hash-chained audit trail of reader reviews, in SQLite (default) or PostgreSQL.

Stores the image's SHA-256, never its pixels, file name or any patient identifier. The database
itself refuses UPDATE and DELETE (triggers in both engines; on PostgreSQL the app's role is also
granted only SELECT and INSERT), and each row's hash covers the row before it (see ``chain``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pneumonia.audit import chain, database
from pneumonia.audit.schema import COLUMNS, EXPORT_COLUMNS, reviews

_SHA256 = re.compile(r"[0-9a-f]{64}")
_LIMITS = {"comment": 1000, "reader": 100, "reader_id": 255}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """The audit trail at ``target``: a SQLite file path, a database URL, or (None) the configured one.

    Opening brings the schema up to date (Alembic, run in code) unless ``migrate`` is False, as for
    ``verify`` and ``export``, which only read.
    """

    def __init__(
        self,
        target: str | Path | None = None,
        *,
        migrate: bool = True,
        clock: Callable[[], datetime] = _utc_now,
    ):
        self.url = database.resolve_url(target)
        self.path = Path(self.url.database) if self.url.get_backend_name() == "sqlite" else None
        self._clock = clock
        if not migrate and self.path is not None and not self.path.is_file():
            raise database.AuditUnavailable(f"There is no audit trail at {self.path}.")
        self._engine = database.make_engine(self.url)
        if migrate:
            self._upgrade()
        else:
            self._check_schema()

    def __repr__(self) -> str:
        return f"AuditLog({self.where!r})"

    @property
    def where(self) -> str:
        """The SQLite file, or the database's URL with the password hidden: safe to show and log."""
        return str(self.path) if self.path is not None else database.redacted(self.url)

    def _upgrade(self) -> None:
        try:
            with database.database_errors(self.url, "preparing the audit tables"):
                database.upgrade(self._engine)
        except database.AuditUnavailable as error:
            if "permission denied" not in str(error):
                raise
            raise database.AuditUnavailable(
                f"{error} The app's database role may not create or change the audit tables: the database "
                "owner runs `python -m pneumonia.audit upgrade --url <the owner's URL>` once (see the README)."
            ) from None

    def _check_schema(self) -> None:
        with database.database_errors(self.url, "reading the audit trail"), self._engine.connect() as connection:
            current = database.current_revision(connection)
        if current != database.head_revision():
            raise database.AuditUnavailable(
                f"The audit trail at {self.where} has not been brought up to date (schema {current or 'none'}); "
                "open it once with the app or run `python -m pneumonia.audit upgrade` with the owner's URL."
            )

    def close(self) -> None:
        self._engine.dispose()

    def _row(self, fields: dict) -> dict:
        if not isinstance(fields["image_sha256"], str) or not _SHA256.fullmatch(fields["image_sha256"]):
            raise ValueError("image_sha256 must be a SHA-256 hex digest (64 lower-case hex characters)")
        if fields["reader_verified"] and not fields["reader_id"].strip():
            raise ValueError("a verified reader needs the identity provider's subject (reader_id)")
        row = dict(fields)
        for name in ("threshold", "probability"):
            chain.canonical_float(row[name])  # refuses NaN and infinity with a clear message
            row[name] = float(row[name])
        for name, limit in _LIMITS.items():
            row[name] = str(row[name]).strip()[:limit]
        row["reader_agrees"] = bool(row["reader_agrees"])
        row["reader_verified"] = bool(row["reader_verified"])
        return row

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
        reader_id: str = "",
        reader_verified: bool = False,
    ) -> int:
        """Append one review; returns its row id.

        ``reader`` is the name shown for the reader (signed-in display name or typed initials);
        ``reader_id`` the identity provider's stable subject (empty without sign-in);
        ``reader_verified`` True only when the identity came from sign-in.
        """
        row = self._row({name: value for name, value in locals().items() if name != "self"})
        with database.database_errors(self.url, "saving the review"), database.write_transaction(self._engine) as db:
            row["time"] = chain.canonical_time(self._clock())  # under the lock: times follow the ids
            last = db.execute(sa.select(reviews.c.id, reviews.c.row_hash).order_by(reviews.c.id.desc()).limit(1))
            last = last.first()
            row["id"], row["prev_hash"] = (last.id + 1, last.row_hash) if last else (1, chain.GENESIS)
            row["row_hash"] = chain.row_hash(row)
            db.execute(reviews.insert().values(**row))
        return int(row["id"])

    def _frame(self, query: sa.Select, columns: tuple[str, ...]) -> pd.DataFrame:
        with database.database_errors(self.url, "reading the audit trail"), self._engine.connect() as db:
            rows = db.execute(query).all()
        frame = pd.DataFrame(rows, columns=list(columns))
        for name in ("reader_agrees", "reader_verified"):
            if name in frame:
                frame[name] = frame[name].astype(bool)
        return frame

    def recent(self, limit: int = 100) -> pd.DataFrame:
        """The newest reviews first: id, the first release's columns, then identity and chain."""
        query = sa.select(*(reviews.c[name] for name in EXPORT_COLUMNS)).order_by(reviews.c.id.desc())
        return self._frame(query.limit(int(limit)), EXPORT_COLUMNS)

    def to_csv(self, limit: int = 100_000) -> bytes:
        return self.recent(limit).to_csv(index=False).encode()

    def between(self, first_day: date, last_day: date) -> pd.DataFrame:
        """Reviews made from ``first_day`` to ``last_day`` inclusive (UTC dates), oldest first."""
        if last_day < first_day:
            raise ValueError(f"the range ends ({last_day}) before it starts ({first_day})")
        start, end = first_day.isoformat(), (last_day + timedelta(days=1)).isoformat()
        query = (
            sa.select(*(reviews.c[name] for name in EXPORT_COLUMNS))
            .where(reviews.c.time >= start, reviews.c.time < end)
            .order_by(reviews.c.id)
        )
        return self._frame(query, EXPORT_COLUMNS)

    def reviewed(self, image_sha256s: list[str]) -> set[str]:
        """Which of these images already have a review in the trail."""
        if not image_sha256s:
            return set()
        query = sa.select(reviews.c.image_sha256).distinct().where(reviews.c.image_sha256.in_(list(image_sha256s)))
        with database.database_errors(self.url, "reading the audit trail"), self._engine.connect() as db:
            return {row[0] for row in db.execute(query)}

    def _chain_rows(self, batch: int = 2000) -> Iterator[dict]:
        columns = (*chain.HASHED_COLUMNS, "row_hash")
        query = sa.select(*(reviews.c[name] for name in columns)).order_by(reviews.c.id)
        with self._engine.connect() as db:
            result = db.execution_options(stream_results=True, yield_per=batch).execute(query)
            for row in result.mappings():
                yield dict(row)

    def verify(self) -> chain.Verdict:
        """Walk the whole chain (in one read transaction) and say whether and where it is broken."""
        with database.database_errors(self.url, "checking the audit trail"):
            return chain.verify_rows(self._chain_rows())


__all__ = ["COLUMNS", "AuditLog"]

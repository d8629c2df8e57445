"""The one table of the audit trail, as the code reads and writes it (Alembic's revisions create it)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# ids are given by the writer under the append lock (previous id + 1), never by a sequence: a
# sequence skips numbers on a rolled-back insert, and here a gap means a removed row.
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("time", sa.Text, nullable=False),  # ISO 8601 UTC text, the same in both engines
    sa.Column("image_sha256", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("operating_point", sa.Text, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("heatmap_method", sa.Text, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("reader_agrees", sa.Boolean, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("reader", sa.Text, nullable=False, server_default=""),
    sa.Column("reader_id", sa.Text, nullable=False, server_default=""),
    sa.Column("reader_verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("prev_hash", sa.Text, nullable=False, server_default=""),
    sa.Column("row_hash", sa.Text, nullable=False, server_default=""),
)

# The columns of the first release, in the order its CSV showed them; the identity and chain follow.
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
IDENTITY_AND_CHAIN = ("reader_id", "reader_verified", "prev_hash", "row_hash")
EXPORT_COLUMNS = ("id", *COLUMNS, *IDENTITY_AND_CHAIN)

# The SQLite DDL of the releases before Alembic (kept to build old files in tests; ``reader`` was added
# to it later by ALTER TABLE). Alembic's first revision adopts such a file as it is.
LEGACY_SQLITE_SCHEMA = """
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

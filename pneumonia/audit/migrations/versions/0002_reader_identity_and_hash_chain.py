"""Who read (reader_id, reader_verified), the hash chain (prev_hash, row_hash), and append-only
enforced by the database itself in both engines.

Rows already there keep their content; the chain is computed over them in id order.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from pneumonia.audit import chain

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REFUSAL = "the audit trail is append-only"
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END",
    f"CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END",
)
POSTGRES_TRIGGERS = (
    f"""CREATE FUNCTION reviews_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{REFUSAL}: % on reviews is refused', TG_OP;
END
$$""",
    "CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews "
    "FOR EACH ROW EXECUTE FUNCTION reviews_refuse_change()",
    "CREATE TRIGGER reviews_no_truncate BEFORE TRUNCATE ON reviews "
    "FOR EACH STATEMENT EXECUTE FUNCTION reviews_refuse_change()",
)


def _chain_existing_rows() -> None:
    reviews = sa.table("reviews", *(sa.column(name) for name in (*chain.HASHED_COLUMNS, "row_hash")))
    bind = op.get_bind()
    rows = bind.execute(sa.select(reviews).order_by(reviews.c.id)).mappings().all()
    previous = chain.GENESIS
    for row in rows:
        values = {**row, "prev_hash": previous, "reader_agrees": bool(row["reader_agrees"])}
        values["row_hash"] = chain.row_hash(values)
        bind.execute(
            reviews.update()
            .where(reviews.c.id == row["id"])
            .values(prev_hash=values["prev_hash"], row_hash=values["row_hash"])
        )
        previous = values["row_hash"]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:  # the releases before Alembic had these; they are recreated below, after the backfill
        op.execute("DROP TRIGGER IF EXISTS reviews_no_update")
        op.execute("DROP TRIGGER IF EXISTS reviews_no_delete")
    op.add_column("reviews", sa.Column("reader_id", sa.Text, nullable=False, server_default=""))
    op.add_column("reviews", sa.Column("reader_verified", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("reviews", sa.Column("prev_hash", sa.Text, nullable=False, server_default=""))
    op.add_column("reviews", sa.Column("row_hash", sa.Text, nullable=False, server_default=""))
    _chain_existing_rows()
    op.create_index("reviews_time", "reviews", ["time"])
    for statement in SQLITE_TRIGGERS if sqlite else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the audit trail is never downgraded: its rows and hashes are kept")

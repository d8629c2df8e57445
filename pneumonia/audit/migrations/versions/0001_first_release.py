"""The reviews table as the releases before Alembic left it.

A new database gets it; an existing SQLite file from those releases is adopted as it is (with the
``reader`` column those releases added on open, should it still lack it), keeping every row.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("reviews"):
        op.create_table(
            "reviews",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("time", sa.Text, nullable=False),
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
        )
    elif "reader" not in {column["name"] for column in inspector.get_columns("reviews")}:
        op.add_column("reviews", sa.Column("reader", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    raise NotImplementedError("the audit trail is never downgraded: its rows are kept")

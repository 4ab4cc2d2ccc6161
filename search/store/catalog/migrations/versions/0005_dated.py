"""0005: each image's date as one sortable number, for listings paged in SQL.

Why: a listing (browse, or a query of filters alone) is newest or oldest first by the
picture's date: its EXIF date, else its file's modification time. That was two columns of
two types (a naive local datetime and epoch seconds), so every page read the date of every
matching row and sorted them in Python. `dated` holds the one number (seconds since the
epoch, the EXIF date read as local time, as `dates.seconds` computes it), written with every
row, and an index on (status, dated) lets a page be an ORDER BY with OFFSET and LIMIT. Rows
written before are filled here, in Python, with the same rule.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from search.store.catalog.dates import seconds

revision, down_revision = "0005", "0004"
branch_labels = depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("dated", sa.Float, nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, taken_at, mtime FROM images")).all()
    images = sa.table("images", sa.column("id", sa.Integer), sa.column("taken_at", sa.DateTime),
                      sa.column("mtime", sa.Float), sa.column("dated", sa.Float))
    values = [{"row": row.id, "value": seconds(_datetime(row.taken_at), row.mtime)} for row in rows]
    if values:
        connection.execute(images.update().where(images.c.id == sa.bindparam("row"))
                           .values(dated=sa.bindparam("value")), values)
    op.create_index("ix_images_status_dated", "images", ["status", "dated"])


def downgrade() -> None:
    op.drop_index("ix_images_status_dated", "images")
    op.drop_column("images", "dated")


def _datetime(value):
    """SQLite hands a DATETIME column back as text through a plain SELECT."""
    if value is None or not isinstance(value, str):
        return value
    from datetime import datetime

    return datetime.fromisoformat(value)

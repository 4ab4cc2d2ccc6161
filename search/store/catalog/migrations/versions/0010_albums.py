"""0010: smart albums.

Why: an album is a saved query whose contents follow the index. Its definition is a row of
`albums`; `album_images` holds each image's verdict, decided once when its content was
indexed (the match head is never run again on an image already judged), and the images
pinned or excluded by hand. An image that leaves the catalog leaves its albums with it:
readers join the two tables, and the next update drops the rows left behind.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0010", "0009"
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table(
        "albums",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("min_match", sa.Float, nullable=True),
        sa.Column("sort", sa.String(16), nullable=False),
        sa.Column("conditions", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=True),
        sa.Column("seen", sa.Integer, nullable=False, server_default="0"),
        sa.Column("checked", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "album_images",
        sa.Column("album_id", sa.Integer, sa.ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("image_id", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("match", sa.Float, nullable=True),
        sa.Column("added_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("album_images")
    op.drop_table("albums")

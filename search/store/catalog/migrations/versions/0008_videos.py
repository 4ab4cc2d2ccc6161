"""0008: videos, and their moments.

Why: a video is one item of the catalog, like an image (its path, content hash, size, date),
and what search finds in it are its *moments*: the shots decoding found (`media.video`), each
with its time span, representative frame, vectors, caption and text. A moment is a row of its
own, so the vector index, stored vectors, full text, match head and decoder serve it as they
serve an image; `parent` names its video's row. `media` says what a row is ("image" or
"video"; a moment is "video" with a parent). `start_s` and `end_s` are a moment's span in
seconds, `frame_s` the time of the frame that stands for it; a video's row holds 0 and its
duration. Rows written before are images.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0008", "0007"
branch_labels = depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("media", sa.String(8), nullable=False, server_default="image"))
    op.add_column("images", sa.Column("parent", sa.Integer, nullable=True))
    op.add_column("images", sa.Column("start_s", sa.Float, nullable=True))
    op.add_column("images", sa.Column("end_s", sa.Float, nullable=True))
    op.add_column("images", sa.Column("frame_s", sa.Float, nullable=True))
    op.create_index("ix_images_parent", "images", ["parent"])


def downgrade() -> None:
    op.execute("DELETE FROM images WHERE media = 'video'")
    op.drop_index("ix_images_parent", "images")
    for column in ("frame_s", "end_s", "start_s", "parent", "media"):
        op.drop_column("images", column)

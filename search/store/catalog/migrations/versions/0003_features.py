"""0003: stored image features, for the match head and questions without the image encoder.

Why: `index --keep-features` keeps each image's encoder output, compact (int8 with scales:
`search/features.py`), so a rerank runs only the Q-Former and `ask` only the decoder. A row
a side ("shared", or "retrieval" and "generation" when the stages encode apart), deleted
with its image. Large blobs (365 KB an image at ViT-g): on PostgreSQL they are stored out of
line without compression, which int8 codes would not repay.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "features",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(16), primary_key=True),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE features ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("features")

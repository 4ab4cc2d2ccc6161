"""0009: each file's inode.

Why: a watched root is reconciled often (`indexer.watching`), and a file moved or renamed
within its filesystem keeps its inode, size and mtime. With the inode stored, such a move is
matched with no read of the file (no content hash), and a file replaced by another of the
same size and mtime (a rename over it) is not mistaken for unchanged. Rows written before
hold NULL: they are matched by size and mtime, then content hash, as before.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0009", "0008"
branch_labels = depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("inode", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("images", "inode")

"""0001: the first catalog: images, their vectors, index facts, and caption full-text search.

Why: the catalog is the store of record. Vectors live beside their image row (float16) so
the vector index can always be rebuilt without a model; captions are searchable through
SQLite FTS5, kept in sync by triggers so no code path can forget to update it.

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
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("root", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime", sa.Float, nullable=False),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("taken_at", sa.DateTime),
        sa.Column("caption", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("indexed_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_images_content_hash", "images", ["content_hash"])
    op.create_index("ix_images_root", "images", ["root"])
    op.create_table(
        "vectors",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE images_fts USING fts5(caption, content='images', content_rowid='id')"
        )
        op.execute(
            "CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN "
            "INSERT INTO images_fts(rowid, caption) VALUES (new.id, new.caption); END"
        )
        op.execute(
            "CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN "
            "INSERT INTO images_fts(images_fts, rowid, caption) VALUES ('delete', old.id, old.caption); END"
        )
        op.execute(
            "CREATE TRIGGER images_fts_update AFTER UPDATE OF caption ON images BEGIN "
            "INSERT INTO images_fts(images_fts, rowid, caption) VALUES ('delete', old.id, old.caption); "
            "INSERT INTO images_fts(rowid, caption) VALUES (new.id, new.caption); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS images_fts")
    op.drop_table("meta")
    op.drop_table("vectors")
    op.drop_table("images")

"""0002: caption full-text search on PostgreSQL.

Why: SQLite searches captions through FTS5 (0001); on PostgreSQL the same search uses a
generated `tsvector` column with a GIN index, which PostgreSQL keeps in step with the
caption on every write, as 0001's triggers do for FTS5. The `simple` configuration
lower-cases and splits words without stemming, as FTS5's default tokenizer does, so both
backends match the same words. Nothing changes on SQLite.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE images ADD COLUMN caption_terms tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', coalesce(caption, ''))) STORED"
        )
        op.execute("CREATE INDEX ix_images_caption_terms ON images USING GIN (caption_terms)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_images_caption_terms")
        op.execute("ALTER TABLE images DROP COLUMN IF EXISTS caption_terms")

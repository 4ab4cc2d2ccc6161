"""0004: the text written in each image (OCR), searchable, and a hash of its picture.

Why: `index` reads the words in images (signs, receipts, screenshots) into `text`: NULL
when never read, "" when read and empty, so the next run reads only what is missing. The
`text:` filter and `--hybrid` search it tolerantly (OCR misreads, users type part of a
word), so both backends index trigrams, not words: SQLite an FTS5 table with the trigram
tokenizer (substrings of 3+ characters, any case), kept in step by triggers as 0001's
caption table is; PostgreSQL a GIN index over `pg_trgm` trigrams, which serves ILIKE
substrings and word similarity. `picture_hash` is a 64-bit perceptual hash of the decoded
picture (signed, as SQL stores 64 bits), with which `duplicates` tells near copies from
look-alikes: NULL until computed.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("text", sa.Text, nullable=True))
    op.add_column("images", sa.Column("picture_hash", sa.BigInteger, nullable=True))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE VIRTUAL TABLE images_text USING fts5(text, content='images', content_rowid='id', "
                   "tokenize='trigram')")
        op.execute("CREATE TRIGGER images_text_insert AFTER INSERT ON images BEGIN "
                   "INSERT INTO images_text(rowid, text) VALUES (new.id, new.text); END")
        op.execute("CREATE TRIGGER images_text_delete AFTER DELETE ON images BEGIN "
                   "INSERT INTO images_text(images_text, rowid, text) "
                   "VALUES ('delete', old.id, old.text); END")
        op.execute("CREATE TRIGGER images_text_update AFTER UPDATE OF text ON images BEGIN "
                   "INSERT INTO images_text(images_text, rowid, text) VALUES ('delete', old.id, old.text); "
                   "INSERT INTO images_text(rowid, text) VALUES (new.id, new.text); END")
        op.execute("INSERT INTO images_text(images_text) VALUES ('rebuild')")
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_images_text_trigrams ON images USING GIN (text gin_trgm_ops)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS images_text_{trigger}")
        op.execute("DROP TABLE IF EXISTS images_text")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_images_text_trigrams")
    op.drop_column("images", "picture_hash")
    op.drop_column("images", "text")

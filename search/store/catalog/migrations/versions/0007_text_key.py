"""0007: the text read in each image as `text:` compares it, indexed in place of the text.

Why: the trigram indexes of 0004 held the text as read, and a typed word proposed the texts
holding it as a substring and the 2,000 sharing most of its trigrams before `textmatch`
decided, so texts the rule accepts were missed: on SQLite `house` shares no trigram with
`HOWSE` (the letter changed is in all three), on both `grusse` finds no `Grüße` (no index
folds `ß` to `ss`), and past the first 2,000 any close match. `text_key` holds
`textmatch.key(text)`: the words folded as the rule folds them (NFKD, case-folded, accents
dropped) and run together, so a word joined to the next is a substring too. The trigram
indexes move to it, SQLite's FTS5 table made again over the new column (an external-content
table's columns are the content table's), and `FullText` asks them only for the substrings
`needles` gives, one of which the key of every text the rule accepts holds. Rows written
before are filled here, in Python, with the same rule.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from search.store.catalog.rows import text_key

revision, down_revision = "0007", "0006"
branch_labels = depends_on = None

ADD = "INSERT INTO images_text(rowid, {c}) VALUES (new.id, new.{c});"
REMOVE = "INSERT INTO images_text(images_text, rowid, {c}) VALUES ('delete', old.id, old.{c});"
TRIGGERS = {  # the FTS5 table kept in step with the column `c` of images, as 0004 did for `text`
    "insert": f"AFTER INSERT ON images BEGIN {ADD} END",
    "delete": f"AFTER DELETE ON images BEGIN {REMOVE} END",
    "update": f"AFTER UPDATE OF {{c}} ON images BEGIN {REMOVE} {ADD} END",
}


def upgrade() -> None:
    op.add_column("images", sa.Column("text_key", sa.Text, nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, text FROM images WHERE text IS NOT NULL")).all()
    images = sa.table("images", sa.column("id", sa.Integer), sa.column("text_key", sa.Text))
    values = [{"row": row.id, "value": text_key(row.text)} for row in rows]
    if values:
        connection.execute(images.update().where(images.c.id == sa.bindparam("row"))
                           .values(text_key=sa.bindparam("value")), values)
    _drop_index()
    _index("text_key")


def downgrade() -> None:
    _drop_index()  # first: SQLite drops no column a trigger names
    op.drop_column("images", "text_key")
    _index("text")


def _drop_index() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS images_text_{trigger}")
        op.execute("DROP TABLE IF EXISTS images_text")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_images_text_trigrams")


def _index(column: str) -> None:
    """The trigram index over `column` of images, kept in step on SQLite by triggers."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(f"CREATE VIRTUAL TABLE images_text USING fts5({column}, content='images', "
                   "content_rowid='id', tokenize='trigram')")
        for trigger, body in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER images_text_{trigger} {body.format(c=column)}")
        op.execute("INSERT INTO images_text(images_text) VALUES ('rebuild')")
    elif dialect == "postgresql":
        op.execute(f"CREATE INDEX ix_images_text_trigrams ON images USING GIN ({column} gin_trgm_ops)")

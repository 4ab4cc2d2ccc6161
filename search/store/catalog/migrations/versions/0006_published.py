"""0006: what an index run has committed is published when it ends, not batch by batch.

Why: an index run commits each batch on its own (a killed run resumes where it stopped), and
readers saw every batch at once: during a run `stats` counted images its vector index did not
hold, and listings showed images that vector search did not find. Each row now carries the
`generation` whose transaction wrote it, and the meta key `published` the generation readers
may see; a reader reads the rows at or below the generation of its own vector index
(`catalog.view`). A changed file (same path, new content) is written by a run at work as a
second row, `replaces` naming the row it takes the place of when the run publishes (its path
meanwhile a placeholder: paths are unique). Rows written before were all published: they get
generation 0, and `published` starts at the catalog's generation. The listing index gains
the generation, so a page and its count are still read from the index alone.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0006", "0005"
branch_labels = depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("generation", sa.Integer, nullable=False, server_default="0"))
    op.add_column("images", sa.Column("replaces", sa.Integer, nullable=True))
    op.create_index("ix_images_replaces", "images", ["replaces"])
    op.drop_index("ix_images_status_dated", "images")
    op.create_index("ix_images_status_dated", "images", ["status", "dated", "generation"])
    op.execute("INSERT INTO meta (key, value) SELECT 'published', value FROM meta WHERE key = 'generation'")


def downgrade() -> None:
    op.execute("DELETE FROM images WHERE replaces IS NOT NULL")  # a run's changed files, unpublished
    op.execute("DELETE FROM meta WHERE key = 'published'")
    op.drop_index("ix_images_status_dated", "images")
    op.create_index("ix_images_status_dated", "images", ["status", "dated"])
    op.drop_index("ix_images_replaces", "images")
    op.drop_column("images", "replaces")
    op.drop_column("images", "generation")

"""Publishing what a writer at work committed (`view` says what readers see), as statements
run inside a catalog transaction.

Unpublished, a run's new rows wait above the published generation, and a changed file
(same path, new content) waits as a second row whose `replaces` names the published row it
takes the place of (its path a placeholder meanwhile: paths are unique). Publishing hands
each second row's content, vectors and features to the row it replaces, which keeps its id
and path; removes the rows of files that vanished; and moves `published` up to the catalog's
generation: readers then see all of it at once.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from . import featurestore
from .blobs import chunks
from .rows import CONTENT, bump_generation
from .schema import FeatureRow, ImageRow, MetaRow, VectorRow
from .view import PUBLISHED


def generations(session: Session) -> tuple[int, int]:
    """(the catalog's generation, the published one)."""
    rows = dict(session.execute(select(MetaRow.key, MetaRow.value)
                                .where(MetaRow.key.in_(["generation", PUBLISHED]))).all())
    return int(rows.get("generation", 0)), int(rows.get(PUBLISHED, 0))


def placeholder(image_id: int) -> str:
    """The path of the second row that replaces image `image_id` (never a file's: not absolute)."""
    return f"replacing image {image_id}"


def publish(session: Session, removed: list[int]) -> None:
    """Publish everything committed so far, with the rows `removed` deleted first."""
    waiting = select(ImageRow.id, ImageRow.replaces).where(ImageRow.replaces.is_not(None))
    pairs = session.execute(waiting).all()
    if pairs:
        _hand_over(session, [(int(new), int(old)) for new, old in pairs])
    delete_images(session, removed)
    generation = bump_generation(session) if pairs or removed else generations(session)[0]
    session.merge(MetaRow(key=PUBLISHED, value=str(generation)))


def drop_replacements(session: Session, ids: list[int]) -> None:
    """Delete the unpublished second rows that would replace any of `ids` (written again)."""
    for part in chunks(ids):
        delete_images(session, list(session.scalars(select(ImageRow.id).where(ImageRow.replaces.in_(part)))))


def delete_images(session: Session, ids: list[int]) -> None:
    """Rows, with their vectors and features."""
    forget_vectors(session, ids)
    for part in chunks(ids):
        session.execute(delete(ImageRow).where(ImageRow.id.in_(part)))


def forget_vectors(session: Session, ids: list[int]) -> None:
    """The vectors and features of rows whose content is written again (or goes)."""
    featurestore.forget(session, ids)
    for part in chunks(ids):
        session.execute(delete(VectorRow).where(VectorRow.image_id.in_(part)))


def _hand_over(session: Session, pairs: list[tuple[int, int]]) -> None:
    """Each (second row, replaced row): the replaced row takes the second's content, vectors
    and features, keeping its id and path; the second row goes. A second row whose replaced
    row is gone is dropped (the next run finds its file new)."""
    olds = [old for _, old in pairs]
    present = {image_id for part in chunks(olds)
               for image_id in session.scalars(select(ImageRow.id).where(ImageRow.id.in_(part)))}
    delete_images(session, [new for new, old in pairs if old not in present])
    pairs = [(new, old) for new, old in pairs if old in present]
    if not pairs:
        return
    by_new = dict(pairs)
    columns = [getattr(ImageRow, name) for name in CONTENT]
    contents = [{"id": by_new[row.id], **{name: getattr(row, name) for name in CONTENT}}
                for part in chunks(list(by_new))
                for row in session.execute(select(ImageRow.id, *columns).where(ImageRow.id.in_(part)))]
    forget_vectors(session, list(by_new.values()))
    session.execute(update(ImageRow), contents)
    moved = [{"new": new, "old": old} for new, old in pairs]
    for table in (VectorRow.__table__, FeatureRow.__table__):
        session.execute(update(table).where(table.c.image_id == bindparam("new"))
                        .values(image_id=bindparam("old")), moved)
    for part in chunks(list(by_new)):
        session.execute(delete(ImageRow).where(ImageRow.id.in_(part)))

"""The catalog's tables (SQLAlchemy 2 typed ORM). Changes here need a numbered migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .paths import FilePath


class Base(DeclarativeBase):
    pass


class ImageRow(Base):
    """One row per file seen under an indexed root, readable or not."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)  # absolute path of the file (any bytes: `paths`)
    root: Mapped[str] = mapped_column(FilePath)  # the indexed root it was found under
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    mtime: Mapped[float]
    width: Mapped[int | None]
    height: Mapped[int | None]
    taken_at: Mapped[datetime | None]  # EXIF DateTimeOriginal
    caption: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)  # written in the image (OCR); NULL: not read yet
    text_key: Mapped[str | None] = mapped_column(Text)  # `textmatch.key(text)`: what `text:` searches
    picture_hash: Mapped[int | None] = mapped_column(BigInteger)  # perceptual, 64 bits, signed
    status: Mapped[str] = mapped_column(String(16))  # "ok" or "failed"
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[datetime]
    dated: Mapped[float | None]  # `dates.seconds`: the EXIF date, else mtime, as one sortable number
    generation: Mapped[int] = mapped_column(server_default="0")  # the catalog generation that wrote it
    replaces: Mapped[int | None]  # a changed file's row not yet published: the row it takes the place of
    media: Mapped[str] = mapped_column(String(8), server_default="image")  # "image" or "video" (0008)
    parent: Mapped[int | None]  # a moment's: its video's row
    start_s: Mapped[float | None]  # a moment's span in seconds; a video's row: 0 and its duration
    end_s: Mapped[float | None]
    frame_s: Mapped[float | None]  # a moment's: when the frame that stands for it is shown
    inode: Mapped[int | None] = mapped_column(BigInteger)  # the file's (0009); NULL: written before

    vectors: Mapped[VectorRow | None] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (Index("ix_images_root", "root"), Index("ix_images_replaces", "replaces"),
                      Index("ix_images_parent", "parent"),
                      Index("ix_images_status_dated", "status", "dated", "generation"))


class VectorRow(Base):
    """The image's Q query vectors, float16, row-major (Q, D)."""

    __tablename__ = "vectors"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[ImageRow] = relationship(back_populates="vectors")


class FeatureRow(Base):
    """One side of the image's stored encoder output (`search.store.features`), (tokens, width)."""

    __tablename__ = "features"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(16), primary_key=True)  # shared, retrieval or generation
    tokens: Mapped[int]
    width: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MetaRow(Base):
    """Key/value facts about the index: model, vector size, query tokens, generation, the
    generation published to readers (`view`)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AlbumRow(Base):
    """A smart album: a saved query (`search.query.albums`), what it keeps and when it was
    last shown (migration 0010)."""

    __tablename__ = "albums"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    query: Mapped[str] = mapped_column(Text)
    min_match: Mapped[float | None]  # the match probability an image needs; None: a query of filters alone
    sort: Mapped[str] = mapped_column(String(16))  # relevance, newest or oldest: how it is shown
    conditions: Mapped[str] = mapped_column(Text, server_default="[]")  # where conditions, a JSON list
    created_at: Mapped[datetime]
    seen_at: Mapped[datetime | None]  # last shown
    seen: Mapped[int] = mapped_column(server_default="0")  # the catalog generation it was last shown at
    checked: Mapped[int] = mapped_column(server_default="0")  # the catalog generation its verdicts cover


class AlbumImageRow(Base):
    """An image's place in an album: `in` (it passed the album's cutoff when its content was
    indexed; the match head is not run on it again), `pinned` or `excluded` by hand."""

    __tablename__ = "album_images"

    album_id: Mapped[int] = mapped_column(ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(primary_key=True)  # no foreign key: a changed file keeps its place
    state: Mapped[str] = mapped_column(String(8))  # in, pinned or excluded
    match: Mapped[float | None]
    added_at: Mapped[datetime]

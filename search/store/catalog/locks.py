"""The database's writer lock: on PostgreSQL an advisory lock, so that writers whose index
folders differ (other machines sharing one database) still take turns; elsewhere the index
folder's lock (`search.store.lock`) is the only one needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from ..lock import IndexBusy

WRITER_KEY = 0x42_4C_49_50_32  # "BLIP2": the advisory lock the writers of one database take in turn


@contextmanager
def writer_lock(engine: Engine, *, wait: bool = True,
                waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        key = {"key": WRITER_KEY}
        if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            if not wait:
                raise IndexBusy("another writer holds this catalog's database; nothing was changed")
            if waiting is not None:
                waiting("waiting for another writer to finish with this catalog's database")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            connection.commit()

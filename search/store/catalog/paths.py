"""File paths in the catalog: any name the file system holds, kept as valid text.

On POSIX a file name is bytes. Python gives a name that is not UTF-8 (a Latin-1 name from an
old archive) with each byte it cannot decode as a lone surrogate, U+DC80 to U+DCFF
(`surrogateescape`), and neither SQLite nor PostgreSQL stores those in a text column. The
catalog writes each such byte as `ESCAPE` and two hex digits, and `ESCAPE` itself doubled;
it reads them back as the surrogates, so a path read from the catalog opens the same file.
`ESCAPE` is U+10FFFD, the last private-use character, which no file name in practice holds.
"""

from __future__ import annotations

import re

from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

ESCAPE = "\U0010fffd"
_RAW = re.compile("[\udc80-\udcff\U0010fffd]")
_STORED = re.compile("\U0010fffd(\U0010fffd|[0-9A-F]{2})")


def to_text(path: str) -> str:
    """`path` as the catalog stores it."""
    return _RAW.sub(_escaped, path)


def _escaped(found: re.Match) -> str:
    return ESCAPE * 2 if found[0] == ESCAPE else f"{ESCAPE}{ord(found[0]) - 0xDC00:02X}"


def from_text(text: str) -> str:
    """The path `to_text` stored as `text`."""
    return _STORED.sub(lambda found: ESCAPE if found[1] == ESCAPE else chr(0xDC00 + int(found[1], 16)), text)


class FilePath(TypeDecorator):
    """A text column of file paths (`to_text` on the way in, `from_text` on the way out)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return None if value is None else to_text(value)

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return None if value is None else from_text(value)

"""Text that came from outside (file names, OCR text, errors naming files) made safe to show.

A POSIX file name is bytes: one that is not UTF-8 reaches Python with lone surrogates
(`surrogateescape`), which no JSON encoder or UTF-8 terminal takes. `readable` writes each
such byte as `\\xNN`. A name may also hold control characters (an escape sequence that sets
a terminal's title, a newline that breaks a one-line-a-hit listing): `one_line` writes
those as `\\xNN` too, for text printed to a terminal.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def readable(text: str) -> str:
    """`text` with each byte that was not UTF-8 as `\\xNN` (any other lone surrogate as
    `\\uNNNN`)."""
    return _SURROGATE.sub(_escaped, text)


def _escaped(found: re.Match) -> str:
    code = ord(found[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """`readable(text)` with control characters as `\\xNN`: safe to print on one line."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found[0]):02x}", readable(text))

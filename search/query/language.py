"""The query language shared by the CLI, the API and the web page (docs/query-language.md):
terms joined by a spaced ` + ` or ` - `, each with an optional weight (`2:`) and either free
text or an indexed image (`#42`); filters (`path:`, `after:`, `before:`, `caption:`,
`text:`, `media:image` or `media:video`, `album:NAME`) anywhere, combined with AND.

    2:golden retriever + #42 - fruit after:2024-05 path:holidays caption:"on a beach"

A malformed query raises `QueryError`, whose message says at which character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import InputError

FIELDS = ("path", "after", "before", "caption", "text", "media", "album")
MAX_ID = 2**62  # catalog ids fit a signed 64-bit integer
MAX_WEIGHT = 1000.0  # a term's weight
_WEIGHT = re.compile(r"(\d+(?:\.\d*)?|\.\d+):(.*)", re.S)
_FIELD = re.compile(r"([A-Za-z_]+):(.*)", re.S)
_IMAGE = re.compile(r"#(\d+)")
_DATE_FORMATS = ("%Y", "%Y-%m")


class QueryError(InputError):
    """A query that does not parse; the message names the character where it goes wrong."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(f"query error at character {position + 1}: {problem}")
        self.position = position


@dataclass(frozen=True)
class Term:
    """`weight` x the term's first-stage score; a `-` term has a negative weight."""

    weight: float
    text: str | None = None
    image_id: int | None = None


@dataclass(frozen=True)
class Filters:
    path: str | None = None
    after: datetime | None = None
    before: datetime | None = None
    caption: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    media: str | None = None  # "image" or "video"
    album: str | None = None  # an album's name: only what it holds

    def __bool__(self) -> bool:
        return any((self.path, self.after, self.before, self.caption, self.text, self.media, self.album))


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...] = ()
    filters: Filters = field(default_factory=Filters)

    @property
    def simple(self) -> str | None:
        """The text when the query is one plain text term of weight 1 (the common case)."""
        if len(self.terms) == 1 and self.terms[0].weight == 1 and self.terms[0].text is not None:
            return self.terms[0].text
        return None

    def texts(self, sign: int) -> list[str]:
        """The texts of the `+` terms (sign 1) or of the `-` terms (sign -1)."""
        return [t.text for t in self.terms if t.text is not None and (t.weight > 0) == (sign > 0)]


def parse(query: str) -> Query:
    words = _words(query)
    if not words:
        raise QueryError(0, "the query is empty")
    parts: list[tuple[int, int, list[tuple[int, str]]]] = [(1, 0, [])]  # (sign, where, words)
    for where, word in words:
        if word in ("+", "-"):
            if not parts[-1][2]:
                raise QueryError(where, f"nothing before {word!r}")
            parts.append((1 if word == "+" else -1, where, []))
        else:
            parts[-1][2].append((where, word))
    sign, where, last = parts[-1]
    if not last:
        raise QueryError(where, f"nothing after {'+' if sign > 0 else '-'!r}")
    terms, found = [], {}
    for sign, where, part in parts:
        term = _part(sign, where, part, found)
        if term is not None:
            terms.append(term)
    if terms and all(term.weight < 0 for term in terms):
        raise QueryError(0, "a query with - terms needs a + term too")
    filters = _filters(found)
    if not terms and not filters:
        raise QueryError(0, "the query is empty")  # `""`: quotes around nothing
    return Query(tuple(terms), filters)


def _words(query: str) -> list[tuple[int, str]]:
    """(position, word) of each whitespace-separated word; a double-quoted stretch, which may
    hold spaces, stays in its word, quotes included."""
    words, i, n = [], 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        start = i
        while i < n and not query[i].isspace():
            if query[i] == '"':
                close = query.find('"', i + 1)
                if close < 0:
                    raise QueryError(i, "this quote is never closed")
                i = close
            i += 1
        words.append((start, query[start:i]))
    return words


def _part(sign: int, where: int, words: list[tuple[int, str]], found: dict) -> Term | None:
    weight = 1.0
    first_at, first = words[0]
    if matched := _WEIGHT.fullmatch(first):
        weight = float(matched.group(1))
        if not 0 < weight <= MAX_WEIGHT:  # past it a score overflows, or drowns every other term
            raise QueryError(first_at, f"a weight must be above 0 and at most {MAX_WEIGHT:g}")
        words = ([(first_at + len(first) - len(matched.group(2)), matched.group(2))] if matched.group(2)
                 else []) + words[1:]
        if not words:
            raise QueryError(first_at, f"the weight {matched.group(1)!r} has no term after it")
    text = []
    for at, word in words:
        if (matched := _FIELD.fullmatch(word)) and not word.startswith('"'):
            _filter(at, matched.group(1).lower(), matched.group(2), found)
        else:
            text.append(_unquoted(word))
    term = " ".join(t for t in text if t)
    if not term:
        if sign < 0 or weight != 1.0:
            raise QueryError(where if sign < 0 else first_at, "this part has filters but no term to score")
        return None
    if matched := _IMAGE.fullmatch(term):
        image_id = int(matched.group(1))
        if not 1 <= image_id <= MAX_ID:
            raise QueryError(words[0][0], f"no image has the id {matched.group(1)}")
        return Term(sign * weight, image_id=image_id)
    return Term(sign * weight, text=term)


def _filter(at: int, name: str, value: str, found: dict) -> None:
    if name not in FIELDS:
        raise QueryError(at, f"unknown field {name + ':'!r}; the fields are "
                         + ", ".join(f + ":" for f in FIELDS) + ' (quote text that holds a colon: "a:b")')
    value = _unquoted(value).strip()
    if not value:
        raise QueryError(at, f"{name}: needs a value, like {name}:{_EXAMPLES[name]}")
    if name in ("caption", "text"):
        found.setdefault(name, []).append(value)
        return
    if name in found:
        raise QueryError(at, f"{name}: is given twice")
    if name == "media" and value.lower() not in MEDIA:
        raise QueryError(at, f"media: takes {' or '.join(MEDIA)}, not {value!r}")
    if name in ("after", "before"):
        value = _date(at, name, value)
    found[name] = value.lower() if name == "media" else value


_EXAMPLES = {"path": "holidays/2024", "after": "2024-05-31", "before": "2024-06",
             "caption": '"a red car"', "text": '"open 24 hours"', "media": "video",
             "album": "beaches"}
MEDIA = ("image", "video")


def _date(at: int, name: str, value: str) -> datetime:
    for layout in _DATE_FORMATS:
        try:
            return datetime.strptime(value, layout)
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(at, f"{name}: takes a date like 2024, 2024-05 or 2024-05-31, "
                         f"not {value!r}") from None


def _unquoted(word: str) -> str:
    return word.replace('"', "")


def _filters(found: dict) -> Filters:
    return Filters(path=found.get("path"), after=found.get("after"), before=found.get("before"),
                   caption=tuple(found.get("caption", ())), text=tuple(found.get("text", ())),
                   media=found.get("media"), album=found.get("album"))

"""The JSON shapes of the public contract, each defined once.

The CLI prints them under `--json` (`model_dump(mode="json")`) and the HTTP API returns them
as its `response_model`s, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, PlainSerializer, model_serializer

from .display import readable
from .records import ImageRecord

# a file's path (or a message naming one): JSON shows a byte that is not UTF-8 as \xNN
FileText = Annotated[str, PlainSerializer(readable, when_used="json")]


class MomentScore(BaseModel):
    """A moment of a video hit that matched: where it starts, and its score."""

    id: int  # the moment's row: its thumbnail is its frame
    time_s: float
    score: float | None


class Hit(BaseModel):
    id: int  # the image's, or the video's (`moment` names the moment found in it)
    path: FileText
    score: float | None  # the query's first-stage score; null in a listing (filters alone)
    caption: str | None  # a video's: its moment's
    match: float | None = None
    taken_at: str | None = None  # EXIF date, else the file's modification time
    text: str | None = None  # written in the image (OCR); null when not read
    text_marks: list[tuple[int, int]] = []  # (start, end) of the words in `text` the query matched
    media: Literal["image", "video"] = "image"
    # a video hit: its best moment (the row id, whose thumbnail is the moment's frame, and its
    # start), the video's duration, and each of its moments that matched, in time order
    moment: int | None = None
    time_s: float | None = None
    duration_s: float | None = None
    moments: list[MomentScore] = []

    @property
    def row(self) -> int:
        """The catalog row this hit's score, match and caption are of: the moment's, else its own."""
        return self.moment if self.moment is not None else self.id


class WhereReport(BaseModel):
    """How a question as a filter went: candidates are asked in rank order until enough hits
    pass (`stopped`: "enough hits") or the candidate budget runs out ("budget")."""

    asked: int
    passed: int
    budget: int
    stopped: str


class SearchResults(BaseModel):
    query: FileText | int  # the query's text, a path (similar by file) or an image id
    results: list[Hit]
    notes: list[str] = []  # what the caller should know about these results
    where: WhereReport | None = None  # with where conditions: how far they went
    partial: bool = False  # a sharded collection answered without some of its shards
    missing_shards: list[int] = []  # which: their images are not among the results


class Match(BaseModel):
    id: int
    match: float


class Matches(BaseModel):
    """The match head's probabilities for hits of a query, as a page fills them in."""

    query: str
    matches: list[Match]


class ImageInfo(BaseModel):
    id: int
    path: FileText
    caption: str | None
    text: str | None = None  # written in the image (OCR): "" when none, null when not read
    width: int | None
    height: int | None
    taken_at: str | None
    indexed_at: str
    status: str
    error: FileText | None
    media: Literal["image", "video"] = "image"
    duration_s: float | None = None  # a video's
    video: int | None = None  # a moment's: its video, which it shows from `time_s` to `end_s`
    time_s: float | None = None
    end_s: float | None = None

    @classmethod
    def of(cls, record: ImageRecord) -> ImageInfo:
        moment = record.parent is not None
        return cls(id=record.id, path=record.path, caption=record.caption, text=record.text,
                   width=record.width, height=record.height, taken_at=_iso(record.taken_at),
                   indexed_at=_iso(record.indexed_at), status=record.status, error=record.error,
                   media=record.media,
                   duration_s=record.end_s if record.media == "video" and not moment else None,
                   video=record.parent, time_s=record.start_s if moment else None,
                   end_s=record.end_s if moment else None)


class Explanation(BaseModel):
    """Why an image matched a text: its query vector that scored best (`token`, its cosine
    `score`), and where the match head finds the text, rows x cols over the image, 0 to 1."""

    id: int
    query: str
    token: int
    score: float
    grid: list[list[float]]
    time_s: float | None = None  # a video's: the start of the moment whose frame the grid lies over


class ImagePage(BaseModel):
    """A page of every indexed image (browse)."""

    total: int
    images: list[ImageInfo]


class Answer(BaseModel):
    id: int
    question: str
    answer: str


class FileError(BaseModel):
    path: FileText
    error: FileText


class PausedRoot(BaseModel):
    """A root whose removals were held back (`indexer.guard`): its images stay as they were."""

    root: FileText
    reason: str
    since: float  # seconds since the epoch


class WatchedRoot(BaseModel):
    """A root `watch` follows: by file-system events or by polling, and why."""

    root: FileText
    mode: Literal["events", "polling"]
    why: str


class ShardCounts(BaseModel):
    total: int = 0
    computed: int = 0  # by this run
    reused: int = 0  # finished by an earlier run


class IndexSummary(BaseModel):
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    model_calls: int = 0
    features: int = 0  # images whose encoder output this run stored (`--keep-features`)
    text: int = 0  # images whose text this run read (OCR), new ones and ones indexed before
    errors: list[FileError] = []
    shards: ShardCounts | None = None  # `index --ray` only; absent from the JSON otherwise
    paused: list[PausedRoot] = []  # roots whose removals were held back, and why (`indexer.guard`)

    @model_serializer(mode="wrap")
    def _without_absent_shards(self, handler) -> dict[str, Any]:
        data = handler(self)
        if data.get("shards") is None:
            data.pop("shards", None)
        return data


class Stats(BaseModel):
    images: int
    vectors: int
    failed: int
    model: str | None
    queries_per_image: int | None
    dim: int | None
    index: str
    generation: int
    index_type: str
    vector_index: str | None
    features: int = 0  # images with stored encoder output (`index --keep-features`)
    feature_bytes: int = 0
    videos: int = 0
    moments: int = 0  # the videos' moments, each with its vectors


class Caption(BaseModel):
    path: FileText
    caption: str


class Captions(BaseModel):
    results: list[Caption]
    errors: list[FileError]


class Reading(BaseModel):
    path: FileText
    text: str  # lines top to bottom, joined by newlines; "" when the picture holds none


class Readings(BaseModel):
    results: list[Reading]
    errors: list[FileError]


class KeptImage(BaseModel):
    id: int
    path: FileText


class DuplicateImage(BaseModel):
    """A member of a duplicate group: its `similarity` to the kept image, 0 to 1
    (`search.query.duplicates`), and why it is there: the same bytes ("identical", similarity 1)
    or a near copy ("near"). The kept image itself is listed first, as "identical", 1."""

    id: int
    path: FileText
    similarity: float
    reason: Literal["identical", "near"]
    why: str  # the kept image: why it is kept; a near copy: how it differs from it, and each signal


class DuplicateGroup(BaseModel):
    keep: KeptImage  # the suggestion: the most pixels, then the oldest, then the lowest id
    images: list[DuplicateImage]  # every member, the kept one first


class Duplicates(BaseModel):
    """Groups of indexed images that show the same picture. Nothing is deleted or moved."""

    groups: list[DuplicateGroup]


def _iso(value) -> str | None:
    return value.isoformat() if value else None


class Album(BaseModel):
    """A smart album: a saved query and what it holds now. `count` and `new` count items (a
    video once); `new_ids` are the hits of `results` written since the album was last shown."""

    name: str
    query: str
    min_match: float | None  # the cutoff on the match probability; null: a query of filters alone
    sort: str
    where: list[str] = []
    count: int = 0
    new: int = 0
    created_at: str
    seen_at: str | None = None
    pinned: list[int] = []
    excluded: list[int] = []
    results: list[Hit] = []
    new_ids: list[int] = []


class Albums(BaseModel):
    albums: list[Album]

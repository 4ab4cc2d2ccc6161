"""What the match head and the decoder say about hits: the match probability of a text, the
answer to a question (one image, or one question asked of many for a where condition), and
why an image matched a text. Images with stored features skip the image encoder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..collection import Collection
from ..errors import InputError
from ..records import Turn
from ..schemas import Explanation
from . import language
from .lookup import Lookup, Timer, untimed

MATCH_BATCH = 16  # images the match head scores in one call


class Questions:
    def __init__(self, collection: Collection, engine, lookup: Lookup, timer: Timer = untimed) -> None:
        self.collection, self.engine, self.lookup, self.timer = collection, engine, lookup, timer

    def match(self, query: str, ids: Sequence[int]) -> dict[int, float]:
        """The match head's P(match) of each of `ids` with `query`. An image that is neither
        indexed nor readable is left out."""
        query = query.strip()
        if not query:
            raise InputError("the query is empty")
        ids = list(dict.fromkeys(int(i) for i in ids))
        matches: dict[int, float] = {}
        for chunk, batch in self.batches(ids, "retrieval", MATCH_BATCH):
            matches.update(zip(chunk, self.engine.itm(batch, query).tolist(), strict=True))
        return {i: float(matches[i]) for i in ids if i in matches}

    def ask(self, image_id: int, question: str, history: Sequence[Turn] = (), at: float | None = None) -> str:
        """The decoder's answer about one indexed image, or a video's frame at `at` seconds
        (its first moment without); `history` holds a chat's earlier turns."""
        if at is not None:
            image = [self.lookup.picture(self.lookup.moment(image_id, at), at=at)]
        else:
            image = self.one_image(self.lookup.moment(image_id), "generation")
        with self.timer("generation"):
            return self.engine.ask(image, question, history)

    def answers(self, ids: Sequence[int], question: str) -> dict[int, str]:
        """The decoder's answer to `question` about each of `ids`, in one batch; unreadable
        ones left out."""
        ids = list(ids)
        found: dict[int, str] = {}
        for chunk, batch in self.batches(ids, "generation", max(len(ids), 1)):
            found.update(zip(chunk, self.engine.ask_each(batch, question), strict=True))
        return found

    def explain(self, image_id: int, text: str, at: float | None = None) -> Explanation:
        """Which of the image's query vectors scored best against `text` (its index and
        cosine, from the stored vectors), and where in the image the match head finds the
        text: a grid over the image, 0 to 1 (`Blip2Engine.explain`). `text` may be a query;
        its heaviest + text term is explained. A video is explained at its moment shown at
        `at` seconds (its first without): the grid lies over that moment's frame."""
        query = language.parse(text)
        wanted = [term for term in query.terms if term.text is not None and term.weight > 0]
        if not wanted:
            raise InputError("explain needs a text to find in the image")
        text = max(wanted, key=lambda term: term.weight).text
        shown = image_id
        image_id = self.lookup.moment(image_id, at)
        vectors = self.lookup.vectors(image_id)
        with self.timer("text_encode"):
            text_vec = self.engine.embed_texts([text])[0]
        scores = np.asarray(vectors, dtype=np.float32) @ text_vec  # (Q,)
        image = self.one_image(image_id, "retrieval")
        with self.timer("rerank"):
            grid = self.engine.explain(image, text)
        record = self.lookup.record(image_id)
        return Explanation(id=shown, query=text, token=int(scores.argmax()), score=float(scores.max()),
                           grid=np.round(grid, 4).tolist(), time_s=record.start_s if record.parent else None)

    def one_image(self, image_id: int, side: str):
        """What `side`'s model takes for one indexed image: a batch of its stored features,
        else its picture in a list; NotFound when it has neither."""
        self.lookup.record(image_id)
        stored = self.collection.catalog.features.read([image_id], [self.engine.feature_key(side)])
        if stored:
            return self.engine.from_features([stored[image_id]], side)
        return [self.lookup.picture(image_id)]

    def batches(self, ids: list[int], side: str, size: int) -> Iterator[tuple[list[int], object]]:
        """(ids, what `side`'s model takes for them) in batches of at most `size`: stored
        features where the images have them, else their pictures, never the two in one batch;
        images neither indexed nor readable are left out."""
        stored = self.collection.catalog.features.read(ids, [self.engine.feature_key(side)])
        pictures = dict(self.lookup.pictures([i for i in ids if i not in stored]))
        sources = [([i for i in ids if i in stored],
                    lambda chunk: self.engine.from_features([stored[i] for i in chunk], side)),
                   (list(pictures), lambda chunk: [pictures[i] for i in chunk])]
        for found, batch_of in sources:
            for start in range(0, len(found), size):
                chunk = found[start : start + size]
                yield chunk, batch_of(chunk)

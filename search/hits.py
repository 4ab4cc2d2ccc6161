"""Questions about hits: the decoder's answers (one image, or one question asked of many for
a where condition), and why an image matched a text. `Searcher` builds on it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from . import querylang
from .errors import ImageError, InputError, NotFound
from .images import open_image
from .prompts import Turn
from .schemas import Explanation
from .similar import SimilarImages


class HitQuestions(SimilarImages):
    def ask(self, image_id: int, question: str, history: Sequence[Turn] = ()) -> str:
        """The decoder's answer; the image encoder is skipped when the image has stored features."""
        image = self.one_image(image_id, "generation")
        with self.timer("generation"):
            return self.engine.ask(image, question, history)

    def answers(self, ids: Sequence[int], question: str) -> dict[int, str]:
        """The decoder's answer to `question` about each of `ids`: from stored features when
        the image has them (no image encoder), else from its file; unreadable ones left out."""
        ids = list(ids)
        found: dict[int, str] = {}
        for chunk, batch in self.batches(ids, "generation", max(len(ids), 1)):
            found.update(zip(chunk, self.engine.ask_each(batch, question), strict=True))
        return found

    def explain(self, image_id: int, text: str) -> Explanation:
        """Which of the image's query vectors scored best against `text` (its index and
        cosine, from the stored vectors), and where in the image the match head finds the
        text: a grid over the image, 0 to 1 (`Blip2Engine.explain`). `text` may be a query;
        its heaviest + text term is explained."""
        query = querylang.parse(text)
        wanted = [term for term in query.terms if term.text is not None and term.weight > 0]
        if not wanted:
            raise InputError("explain needs a text to find in the image")
        text = max(wanted, key=lambda term: term.weight).text
        vectors = self.stored_vectors(image_id)
        with self.timer("text_encode"):
            text_vec = self.engine.embed_texts([text])[0]
        scores = np.asarray(vectors, dtype=np.float32) @ text_vec
        image = self.one_image(image_id, "retrieval")
        with self.timer("rerank"):
            grid = self.engine.explain(image, text)
        return Explanation(id=image_id, query=text, token=int(scores.argmax()), score=float(scores.max()),
                           grid=np.round(grid, 4).tolist())

    def picture(self, path: str, image_id: int) -> Image.Image:
        try:
            return open_image(path)
        except ImageError as exc:
            raise NotFound(f"image {image_id} ({path}) cannot be read: {exc}") from None

    def one_image(self, image_id: int, side: str):
        """What `side`'s model takes for one indexed image: a batch of its stored features,
        else its picture in a list; NotFound when it has neither."""
        record = self.record(image_id)
        stored = self.collection.features([image_id], self.engine.feature_key(side))
        if stored:
            return self.engine.from_features([stored[image_id]], side)
        return [self.picture(record.path, image_id)]

    def batches(self, ids: list[int], side: str, size: int) -> Iterator[tuple[list[int], object]]:
        """(ids, what `side`'s model takes for them) in batches of at most `size`: stored
        features where the images have them, else their pictures, never the two in one batch;
        images neither indexed nor readable are left out."""
        stored = self.collection.features(ids, self.engine.feature_key(side))
        pictures = dict(self._pictures([i for i in ids if i not in stored]))
        sources = [([i for i in ids if i in stored],
                    lambda chunk: self.engine.from_features([stored[i] for i in chunk], side)),
                   (list(pictures), lambda chunk: [pictures[i] for i in chunk])]
        for found, batch_of in sources:
            for start in range(0, len(found), size):
                chunk = found[start : start + size]
                yield chunk, batch_of(chunk)

    def _pictures(self, ids: list[int]) -> list[tuple[int, Image.Image]]:
        """(id, picture) of those of `ids` that are indexed and whose file reads."""
        records = self.collection.images(ids)
        pictures = []
        for image_id in ids:
            record = records.get(image_id)
            if record is None or record.status != "ok":
                continue
            try:
                pictures.append((image_id, open_image(record.path)))
            except ImageError:
                continue
        return pictures

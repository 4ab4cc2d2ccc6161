"""What the ingress holds in place of local objects: the shards and the model, reached
through Ray Serve handles, each call with a deadline.

A shard call that fails (its replica died with its node) is sent again, and Serve routes it
to a live replica; one that is still unanswered at the deadline is left out of the merge
and named (`search.store.shards.record_missing`): the response says it is partial.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from search.errors import SearchError
from search.store.shards import ShardUnavailable
from search.store.shards.fanout import record_missing

SHARD_TIMEOUT_S = 5.0  # a shard's answer, retries included
MODEL_TIMEOUT_S = 600.0  # a model part's (a decoder's answer on a CPU takes seconds)
RETRY_PAUSE_S = 0.05


class RayShards:
    """Every shard a Ray Serve deployment (`deployments.Shard`)."""

    def __init__(self, handles: Sequence, timeout_s: float = SHARD_TIMEOUT_S) -> None:
        self.handles, self.timeout_s = list(handles), timeout_s
        self.count = len(self.handles)

    def ask(self, method: str, *args) -> dict[int, object]:
        deadline = time.monotonic() + self.timeout_s
        pending = {n: getattr(handle, method).remote(*args) for n, handle in enumerate(self.handles)}
        answers, missing = {}, []
        for number, response in pending.items():
            try:
                answers[number] = self._answer(number, response, method, args, deadline)
            except ShardUnavailable:
                missing.append(number)
        record_missing(missing)
        return answers

    def _answer(self, number: int, response, method: str, args: tuple, deadline: float):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ShardUnavailable(f"shard {number} did not answer in {self.timeout_s} s")
            try:
                return response.result(timeout_s=left)
            except TimeoutError:
                raise ShardUnavailable(f"shard {number} did not answer in {self.timeout_s} s") from None
            except SearchError:
                raise
            except Exception:  # its replica is gone: Serve sends it again to a live one
                time.sleep(RETRY_PAUSE_S)
                response = getattr(self.handles[number], method).remote(*args)


ROUTES = {"embed_texts": "text", "embed_images": "match", "itm": "match", "explain": "match",
          "from_features": "match", "feature_key": "match", "ask": "decoder", "ask_each": "decoder",
          "caption": "decoder"}


class RemoteEngine:
    """A `Blip2Engine` whose parts are deployments (`deployments.ModelPart`): each method goes
    to the part that runs it; what the engine describes of itself (name, device, precision)
    comes from the text side."""

    def __init__(self, parts: dict, timeout_s: float = MODEL_TIMEOUT_S) -> None:
        self.parts, self.timeout_s = parts, timeout_s
        self._about = parts["text"].describe.remote().result(timeout_s=timeout_s)
        about = self._about
        self.name, self.device, self.precision = about["name"], about["device"], about["precision"]
        self.loaded = self._about["loaded"]  # every part is built as its deployment starts
        self._keys: dict[str, str] = {}

    def prepare(self, names: Sequence[str]) -> None:
        pass  # built where they run

    def feature_key(self, side: str) -> str:
        if side not in self._keys:
            self._keys[side] = self._call("feature_key", side)
        return self._keys[side]

    def __getattr__(self, name: str):
        if name not in ROUTES:
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    def _call(self, name: str, *args, **kwargs):
        return self.parts[ROUTES[name]].call.remote(name, args, kwargs).result(timeout_s=self.timeout_s)

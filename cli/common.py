"""What the commands share: their common options, settings from the flags, the collection
and the engine. Heavy modules (torch, transformers, FAISS) load only when a command runs."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from search.config import DecoderDType, Device, DType, EncoderDType, Settings, choices, load_settings
from search.errors import InputError

SETTINGS_FLAGS = ("index", "model", "device", "dtype", "encoder_dtype", "decoder_dtype", "batch_size",
                  "max_memory", "workers", "host", "port")


def index_options() -> argparse.ArgumentParser:
    """--index and --json, which every command takes."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--index", help="index folder (default ./.blip2-search, or $BLIP2_SEARCH_INDEX)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def model_options() -> argparse.ArgumentParser:
    """The model and how it runs, for commands that load it."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model", help="preset name or a folder with retrieval/ and generation/")
    parser.add_argument("--device", choices=choices(Device))
    parser.add_argument("--dtype", choices=choices(DType),
                        help="precision (default auto: float16 on a GPU; on a CPU the faster of float32 and "
                             "bfloat16, measured at load)")
    parser.add_argument("--encoder-dtype", choices=choices(EncoderDType),
                        help="the image encoder's precision (default auto, on a CPU: int8 where int8 is "
                             "at least 1.5 times faster, else int8 weights computed in float32)")
    parser.add_argument("--decoder-dtype", choices=choices(DecoderDType),
                        help="the language model's precision (default auto: int8 weights on a CPU)")
    parser.add_argument("--batch-size", type=int)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command's flags on top."""
    return load_settings(**{name: getattr(args, name, None) for name in SETTINGS_FLAGS})


def open_collection(settings: Settings, *, create: bool = False):
    from search.collection import Collection

    return Collection.open(settings.index, create=create, url=settings.database_url)


def load_engine(settings: Settings, model: str):
    """The process's threads set up for inference, then the engine for `model` (its parts
    are read when first used)."""
    from search import runtime
    from search.models import Blip2Engine

    runtime.configure(settings.threads)
    return Blip2Engine.from_settings(settings, model)


class LazyEngine:
    """The engine, opened when a command first uses it: a similar by id, a listing or a
    filter-only query never imports torch or reads a model."""

    def __init__(self, settings: Settings, model: str) -> None:
        self._settings, self._model, self._engine = settings, model, None

    def __getattr__(self, name: str):
        if self._engine is None:
            self._engine = load_engine(self._settings, self._model)
        return getattr(self._engine, name)

    @property
    def loaded(self) -> list[str]:
        return [] if self._engine is None else self._engine.loaded


@contextmanager
def searcher(args: argparse.Namespace) -> Iterator:
    """A `Searcher` over the index, with the model that built it (another is refused before
    anything loads); the collection is closed afterwards."""
    from search import runtime
    from search.query.searcher import Searcher

    settings = settings_from(args)
    collection = open_collection(settings)
    try:
        if collection.model is None:
            hint = "run `blip2-search index PATH` first"
            raise InputError(f"the index at {collection.folder} is empty: {hint}")
        runtime.configure(settings.threads, models=False)  # torch's pool: when the engine opens
        yield Searcher(collection, LazyEngine(settings, collection.model_to_load(settings.model)))
    finally:
        collection.close()

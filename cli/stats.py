"""`blip2-search stats`: what the index holds."""

from __future__ import annotations

import argparse

from .common import open_collection, settings_from
from .output import emit


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    stats = sub.add_parser("stats", parents=parents, help="what the index holds")
    stats.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    collection = open_collection(settings_from(args))
    try:
        stats = collection.stats()
    finally:
        collection.close()
    emit(args, stats, [f"{key}: {value}" for key, value in stats.model_dump().items()])
    return 0

"""The `blip2-search` entry point: the commands' parsers, and errors as one line.

Every command takes `--json`; exit 0 on success, 1 on a user error with a one-line message.
Heavy modules (torch, transformers) are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from search.display import one_line
from search.errors import SearchError, describe

from . import (
    album,
    ask,
    browse,
    caption,
    demo,
    duplicates,
    evaluate,
    explain,
    image,
    index,
    mcp,
    ocr,
    search,
    serve,
    shard,
    similar,
    stats,
    train_demo,
    watch,
)
from .common import index_options, model_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blip2-search", description="Image search on BLIP-2.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common, model = index_options(), model_options()
    for command in (caption, index, search, similar, ask, explain, serve, mcp, evaluate, album, watch):
        command.register(sub, [common, model])
    for command in (image, browse, ocr, duplicates, stats, shard, demo, train_demo):
        command.register(sub, [common])
    return parser


MESSAGE_CHARS = 500  # an error line's length at most


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a byte of a file name that is not UTF-8, printed, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    _library_warnings()
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except SearchError as exc:
        return _fail(str(exc))
    except OSError as exc:  # the disk is full, a folder cannot be written: what and where
        return _fail(describe(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    except Exception as exc:  # an internal error: still one line unless asked for the traceback
        if os.environ.get("BLIP2_SEARCH_DEBUG"):
            raise
        hint = "BLIP2_SEARCH_DEBUG=1 shows the traceback"
        return _fail(f"internal error: {type(exc).__name__}: {exc} ({hint})")


def _library_warnings() -> None:
    """What the library logs as a warning reaches the terminal as one line of ours."""
    log = logging.getLogger("blip2_search")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)  # its debug lines stay in the library's log
        handler.setFormatter(logging.Formatter("blip2-search: warning: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def _fail(message: str, code: int = 1) -> int:
    """One line, whatever the message holds (a file name's bytes, a driver's whole statement)."""
    message = one_line(message)
    if len(message) > MESSAGE_CHARS:
        message = f"{message[:MESSAGE_CHARS]}… ({len(message):,} characters)"
    print(f"blip2-search: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

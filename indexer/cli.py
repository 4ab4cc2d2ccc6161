"""The `blip2-search` command line: a thin layer over the `search` library.

Every command takes `--json`; exit 0 on success, 1 on a user error with a one-line message.
Heavy modules (torch, transformers) are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from search.errors import SearchError

from . import commands


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", help="index folder (default ./.blip2-search, or $BLIP2_SEARCH_INDEX)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", help="preset name or a folder with retrieval/ and generation/")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"))
    model.add_argument("--dtype", choices=("float32", "bfloat16", "float16", "int8"))
    model.add_argument("--batch-size", type=int)

    parser = argparse.ArgumentParser(prog="blip2-search", description="Image search on BLIP-2.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    caption = sub.add_parser("caption", parents=[common, model], help="caption image files (no index needed)")
    caption.add_argument("paths", nargs="+", metavar="IMAGE_PATH")
    caption.add_argument("--prompt", help="text the caption continues, e.g. 'a photo of'")
    caption.set_defaults(run=commands.caption)

    demo = sub.add_parser("demo", parents=[common], help="sample images, the demo model and a tour")
    demo.add_argument("dir", nargs="?", help="folder for the sample images")
    demo.set_defaults(run=commands.demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except SearchError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    except Exception as exc:  # an internal error: still one line unless asked for the traceback
        if os.environ.get("BLIP2_SEARCH_DEBUG"):
            raise
        hint = "BLIP2_SEARCH_DEBUG=1 shows the traceback"
        return _fail(f"internal error: {type(exc).__name__}: {exc} ({hint})")


def _fail(message: str, code: int = 1) -> int:
    print(f"blip2-search: error: {message}", file=sys.stderr)
    return code



if __name__ == "__main__":
    sys.exit(main())

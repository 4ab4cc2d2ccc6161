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

from . import commands, querying


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", help="index folder (default ./.blip2-search, or $BLIP2_SEARCH_INDEX)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", help="preset name or a folder with retrieval/ and generation/")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"))
    model.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16", "int8"))
    model.add_argument("--batch-size", type=int)

    parser = argparse.ArgumentParser(prog="blip2-search", description="Image search on BLIP-2.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    caption = sub.add_parser("caption", parents=[common, model], help="caption image files (no index needed)")
    caption.add_argument("paths", nargs="+", metavar="IMAGE_PATH")
    caption.add_argument("--prompt", help="text the caption continues, e.g. 'a photo of'")
    caption.set_defaults(run=commands.caption)

    index = sub.add_parser("index", parents=[common, model], help="index folders of images")
    index.add_argument("paths", nargs="+", metavar="PATH")
    index.add_argument("--no-captions", action="store_true", help="skip captions (faster)")
    index.add_argument("--workers", type=int, help="image-decoding processes (default 2)")
    index.add_argument("--exclude", action="append", metavar="GLOB", help="skip matching files (repeatable)")
    index.add_argument("--index-type", choices=("auto", "exact", "compressed"),
                       help="vector index kind, kept for later runs (default auto: exact below "
                            "20,000 images, compressed from there); a change rebuilds with no model call")
    index.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="embed on Ray: a cluster's address, or none to start a local Ray instance "
                            "(needs the [distributed] extra; put it after the paths, or write --ray=ADDRESS)")
    index.add_argument("--shard-size", type=int, metavar="N",
                       help="with --ray: files a Parquet shard holds (default 256)")
    index.set_defaults(run=commands.index)

    search = sub.add_parser("search", parents=[common, model], help="search the index with text")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    search.add_argument("--rerank", action="store_true", help="rerank with the match head; fills 'match'")
    search.add_argument("--rerank-top", type=int, default=50, metavar="N", help="hits reranked (default 50)")
    search.add_argument("--min-match", type=float, metavar="P", help="drop hits below this match probability")
    search.add_argument("--hybrid", action="store_true", help="fuse caption full-text and vector ranks")
    search.add_argument("--path-prefix", help="only images under this folder")
    search.add_argument("--after", help="only images taken (EXIF, else modified) on or after this date")
    search.add_argument("--before", help="only images taken (EXIF, else modified) before this date")
    search.set_defaults(run=querying.search)

    similar = sub.add_parser("similar", parents=[common, model], help="images similar to an image")
    similar.add_argument("image", nargs="?", metavar="IMAGE_PATH")
    similar.add_argument("--id", type=int, help="an indexed image's id instead of a path")
    similar.add_argument("-k", type=int, default=10)
    similar.set_defaults(run=querying.similar)

    ask = sub.add_parser("ask", parents=[common, model], help="ask a question about an indexed image")
    ask.add_argument("id", type=int)
    ask.add_argument("question")
    ask.set_defaults(run=querying.ask)

    serve = sub.add_parser("serve", parents=[common, model], help="the HTTP API and web page")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, help="image-decoding processes for index jobs (default 2)")
    serve.set_defaults(run=commands.serve)

    evaluate = sub.add_parser("eval", parents=[common, model], help="measure a model on labelled images")
    evaluate.add_argument("folder", help="folder holding the images")
    evaluate.add_argument("records", help='JSONL of {"image", "caption"} and {"image", "question", "answer"}')
    evaluate.add_argument("--rerank-top", type=int, default=128, help="ITM rerank depth; 0 turns it off")
    evaluate.set_defaults(run=commands.evaluate)

    stats = sub.add_parser("stats", parents=[common], help="what the index holds")
    stats.set_defaults(run=commands.stats)

    demo = sub.add_parser("demo", parents=[common], help="sample images, the demo model and a tour")
    demo.add_argument("dir", nargs="?", help="folder for the sample images (default ./demo-images)")
    demo.set_defaults(run=commands.demo)

    train = sub.add_parser("train-demo", parents=[common], help="train the demo model from scratch")
    train.add_argument("out", help="folder for the trained retrieval/ and generation/ checkpoints")
    train.add_argument("--minutes", type=float, default=58.0, help="training time budget (default 58)")
    train.add_argument("--max-steps", type=int, help="stop after this many steps instead")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--shape-focus", type=float, default=0.0, metavar="F",
                       help="share of the first steps spent on shape-only questions and negatives")
    train.add_argument("--vision-minutes", type=float, default=28.0, metavar="M",
                       help="stage 0: minutes (within --minutes) pretraining the image encoder alone")
    train.set_defaults(run=commands.train_demo)
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

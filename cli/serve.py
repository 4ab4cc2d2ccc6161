"""`blip2-search serve`: the HTTP API and the web page under uvicorn (`api.serving`), built
from the settings (flags over the environment) and handed to the server as an app object."""

from __future__ import annotations

import argparse

from .common import settings_from


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", parents=parents, help="the HTTP API and web page")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; beyond loopback, "
                                      "indexing needs BLIP2_SEARCH_API_KEY)")
    serve.add_argument("--port", type=int, help="default 8000")
    serve.add_argument("--workers", type=int, help="image-decoding processes for index jobs (default 2)")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from api.app import create_app
    from api.serving import serve

    settings = settings_from(args)
    serve(create_app(settings), settings)
    return 0

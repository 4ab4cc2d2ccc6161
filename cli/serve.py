"""`blip2-search serve`: the HTTP API and the web page under uvicorn, built from the
settings (flags over the environment) and handed to the server as an app object."""

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
    import uvicorn

    from api.app import create_app

    settings = settings_from(args)
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
    uvicorn.Server(config).run()
    return 0

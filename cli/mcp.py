"""`blip2-search mcp`: the MCP server (`api.mcp`) over stdio, for an assistant that starts it
as a subprocess. The index and the engine open as `serve` opens them (the text side first,
the other parts on first use); stdout carries the protocol alone, everything else goes to
stderr."""

from __future__ import annotations

import argparse
import contextlib
import sys

from .common import settings_from


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    mcp = sub.add_parser("mcp", parents=parents, help="an MCP server over stdio (tools for an assistant)")
    mcp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    from api import mcp
    from api.metrics import Metrics
    from api.state import start

    settings = settings_from(args)
    with contextlib.redirect_stdout(sys.stderr):  # a library's stray print is not a protocol message
        state = start(settings, Metrics())
    try:
        anyio.run(mcp.serve_stdio, state)
    finally:
        state.close()
    return 0

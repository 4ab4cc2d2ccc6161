"""The web page's test harness: the real server (uvicorn, as `blip2-search serve` runs it)
over an index, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.needs import missing

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]


def need(condition: bool, what: str) -> None:
    if not condition:
        missing(what)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(settings, *flags: str):
    """The real server (uvicorn, as `blip2-search serve` runs it) over `settings`' index, with
    `serve`'s `flags`; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--index", str(settings.index), "--model",
         settings.model, "--port", str(port), "--workers", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {process.stdout.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=20)


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.set_default_timeout(20_000)
    page.goto(url)
    return page


def chromium():
    """Debian's Chromium, through Playwright: one a module (Playwright's sync API runs one at a time)."""
    need(shutil.which("chromium") is not None or os.path.exists(CHROMIUM), "Chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()

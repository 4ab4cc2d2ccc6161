"""Slow clients cannot exhaust the real server: 400 connections that never finish a request,
against a process allowed 256 file descriptors, and /healthz still answers, with a quiet log."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.browsing import free_port

pytestmark = pytest.mark.slow  # hundreds of slow clients against the real server

FILES = 256
SLOW = 400


def _few_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILES, FILES))


def _healthy(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def test_slow_clients_do_not_stop_the_server(served_index, tmp_path):
    settings = served_index["settings"]
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--index", str(settings.index), "--model",
             settings.model, "--port", str(port), "--workers", "0"],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=_few_files)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url, 1):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        slow = []
        for _ in range(SLOW):  # each sends half a request line and then nothing
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x")
                slow.append(sock)
            except OSError:
                continue
        started = time.monotonic()
        answered = False
        while time.monotonic() - started < 30 and not answered:
            answered = _healthy(url, 2)
            time.sleep(0.2)
        waited = time.monotonic() - started
        for sock in slow:
            sock.close()
        assert answered, log.read_text()[-2000:]
        assert waited < 25  # at most a request timeout (10 s) and a little
        assert server.poll() is None
        assert len(log.read_text().splitlines()) < 20, log.read_text()[-2000:]  # no log flood
    finally:
        server.terminate()
        server.wait(timeout=20)

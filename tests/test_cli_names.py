"""File names as the file system holds them: bytes that are not UTF-8 (a Latin-1 archive) and
control characters. The CLI runs in a fresh process, its output a pipe as a script reads it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.support.corpus import write_corpus

LATIN = b"caf\xe9"  # a Latin-1 folder name
# the last sets a terminal's title and holds a newline
NAMES = [b"\xe9t\xe9.png", b"ni\xf1o.png", b"evil\x1b]0;owned\x07\nname.png"]


def _cli(*argv: str | bytes, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "cli.main", *argv], capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    if check:
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return done


def test_names_that_are_not_utf8_are_indexed_searched_and_shown(tmp_path, tiny_dirs):
    pictures = write_corpus(tmp_path / "plain", 5)
    folder = os.fsencode(tmp_path) + b"/" + LATIN  # the folder given on the command line is not UTF-8 either
    os.mkdir(folder)
    for source, name in zip(pictures, NAMES, strict=False):
        shutil.copy(source, folder + b"/" + name)
    shutil.copy(pictures[3], folder + b"/plain.png")
    index = str(tmp_path / "index")

    summary = json.loads(_cli("index", folder, "--index", index, "--model", str(tiny_dirs["opt"]), "--json",
                              "--workers", "0").stdout)
    assert (summary["added"], summary["failed"]) == (4, 0)
    again = json.loads(_cli("index", folder, "--index", index, "--model", str(tiny_dirs["opt"]),
                            "--json", "--workers", "0").stdout)
    assert (again["added"], again["unchanged"]) == (0, 4)  # the same files, found by their paths

    found = json.loads(_cli("search", "a picture", "--index", index, "-k", "10", "--json").stdout)
    shown = {hit["path"].rsplit("/", 1)[1] for hit in found["results"]}
    assert shown == {"\\xe9t\\xe9.png", "ni\\xf1o.png", "evil\x1b]0;owned\x07\nname.png", "plain.png"}
    assert all("/caf\\xe9/" in hit["path"] for hit in found["results"])

    by_path = json.loads(_cli("similar", folder + b"/" + NAMES[0], "--index", index, "--json").stdout)
    assert len(by_path["results"]) == 3  # the others: the file itself is left out

    text = _cli("search", "a picture", "--index", index, "-k", "10").stdout.decode("utf-8")
    lines = text.splitlines()
    assert len(lines) == 4  # one a hit: the newline in a name does not break a line
    assert "\x1b" not in text and "\x07" not in text
    assert any("evil\\x1b]0;owned\\x07\\x0aname.png" in line for line in lines)
    assert any("caf\\xe9/\\xe9t\\xe9.png" in line for line in lines)

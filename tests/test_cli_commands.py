"""Each command's --json output has the documented shape; user errors are one line, exit 1."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from cli.main import main
from tests.support.corpus import write_corpus

HIT_KEYS = {"id", "path", "score", "caption", "match", "taken_at", "text", "text_marks", "media", "moment",
            "time_s", "duration_s", "moments"}


@pytest.fixture
def indexed(tmp_path, tiny_dirs, capsys):
    write_corpus(tmp_path / "photos", 6)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    index = str(tmp_path / "index")
    code = main(["index", str(tmp_path / "photos"), "--index", index, "--model", str(tiny_dirs["opt"]),
                 "--json", "--workers", "0"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    return index, summary


def _json(argv, capsys) -> dict:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_index_json(indexed):
    _, summary = indexed
    assert set(summary) == {"added", "updated", "moved", "removed", "unchanged", "failed", "model_calls",
                            "features", "text", "errors", "paused"}
    assert summary["features"] == 0  # not kept unless asked
    assert (summary["added"], summary["failed"]) == (6, 1)
    assert summary["errors"][0]["path"].endswith("broken.jpg") and summary["errors"][0]["error"]


def test_search_json(indexed, capsys):
    index, _ = indexed
    out = _json(["search", "a red circle", "--index", index, "-k", "3", "--json"], capsys)
    assert out["query"] == "a red circle"
    assert len(out["results"]) == 3
    assert all(set(hit) == HIT_KEYS and hit["match"] is None for hit in out["results"])
    out = _json(["search", "a red circle", "--index", index, "-k", "2", "--rerank", "--json"], capsys)
    assert len(out["results"]) == 2 and all(isinstance(hit["match"], float) for hit in out["results"])
    out = _json(["search", "circle", "--index", index, "--hybrid", "--after", "2000-01-01", "--json"], capsys)
    assert len(out["results"]) == 6


def test_similar_json(indexed, tmp_path, capsys):
    index, _ = indexed
    out = _json(["similar", "--id", "2", "--index", index, "-k", "3", "--json"], capsys)
    assert [set(hit) for hit in out["results"]] == [HIT_KEYS] * 3
    assert 2 not in [hit["id"] for hit in out["results"]]
    query = str(tmp_path / "photos" / "img0001.png")
    by_path = _json(["similar", query, "--index", index, "--json"], capsys)
    assert query not in [hit["path"] for hit in by_path["results"]]  # an indexed query image is left out
    assert len(by_path["results"]) == 5


def test_shard_splits_the_index_and_says_how(indexed, capsys):
    index, _ = indexed
    found = _json(["shard", "2", "--index", index, "--json"], capsys)
    assert found["shards"] == 2 and sum(found["images"]) == 6 and found["kind"] == "exact"
    assert (Path(index) / "shards" / found["folder"] / "shard-001" / "stored.f16").stat().st_size > 0


def test_ask_and_stats_json(indexed, capsys):
    index, _ = indexed
    out = _json(["ask", "2", "what color is the circle?", "--index", index, "--json"], capsys)
    assert set(out) == {"id", "question", "answer"} and out["id"] == 2
    stats = _json(["stats", "--index", index, "--json"], capsys)
    assert stats["images"] == 6 and stats["failed"] == 1
    assert stats["vectors"] == 6 * stats["queries_per_image"]
    assert stats["model"]


def test_human_output(indexed, capsys):
    index, _ = indexed
    assert main(["search", "a red circle", "--index", index, "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("1.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["search", "x", "--index", "{tmp}/missing"], "no index at"),
     (["ask", "999", "what?", "--index", "{index}"], "no indexed image with id 999"),
     (["similar", "--id", "999", "--index", "{index}"], "no indexed image with id 999"),
     (["search", "  ", "--index", "{index}"], "the query is empty"),
     (["ask", "2", " ", "--index", "{index}"], "the question is empty"),
     (["ask", "1", "what?", "--index", "{index}"], "broken.jpg) could not be indexed"),
     (["search", "x", "--index", "{index}", "--after", "yesterday"], "--after takes a date"),
     (["similar", "--index", "{index}"], "give an image path or --id"),
     (["index", "{tmp}/nowhere", "--index", "{index}"], "does not exist"),
     (["search", "x", "--index", "{index}", "--model", "blip2-opt-2.7b"], "built with model"),
     (["shard", "0", "--index", "{index}"], "at least one shard"),
     (["shard", "2", "--index", "{tmp}/missing"], "no index at"),
     (["serve", "--ray", "--shards", "0", "--index", "{index}"], "--shards and --replicas take a number")],
)
def test_user_errors_are_one_line(indexed, tmp_path, capsys, argv, message):
    index, _ = indexed
    argv = [a.format(tmp=tmp_path, index=index) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blip2-search: error: ")
    assert message in err[0]
    assert "Traceback" not in err[0]


def test_database_url_names_another_catalog(tmp_path, tiny_dirs, monkeypatch, capsys):
    write_corpus(tmp_path / "photos", 3)
    database = tmp_path / "elsewhere" / "catalog.sqlite"
    database.parent.mkdir()
    monkeypatch.setenv("BLIP2_SEARCH_DATABASE_URL", f"sqlite:///{database}")
    index = str(tmp_path / "index")
    _json(["index", str(tmp_path / "photos"), "--index", index, "--model", str(tiny_dirs["opt"]),
           "--workers", "0", "--json"], capsys)
    assert database.exists() and not (tmp_path / "index" / "catalog.db").exists()
    assert len(_json(["search", "a star", "--index", index, "--json"], capsys)["results"]) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("as_json", [False, True])
def test_progress_bar_on_a_terminal_only(tmp_path, tiny_dirs, monkeypatch, capsys, as_json):
    write_corpus(tmp_path / "photos", 5)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["index", str(tmp_path / "photos"), "--index", str(tmp_path / "index"),
            "--model", str(tiny_dirs["opt"]), "--workers", "0", "--batch-size", "2"]
    assert main(argv + (["--json"] if as_json else [])) == 0
    shown = terminal.getvalue()
    assert ("5/5" in shown) != as_json, shown


def test_indexing_with_another_model_is_refused(indexed, tiny_dirs, tmp_path, capsys):
    index, _ = indexed
    assert main(["index", str(tmp_path / "photos"), "--index", index, "--model", str(tiny_dirs["t5"])]) == 1
    assert "built with model" in capsys.readouterr().err


def test_captioning_prints_nothing_but_the_result(tmp_path, tiny_dirs):
    """A user's terminal shows only what is meant for them: no library warnings on stderr."""
    import subprocess

    [image] = write_corpus(tmp_path / "photos", 1)
    result = subprocess.run([sys.executable, "-m", "cli.main", "caption", str(image), "--model",
                             str(tiny_dirs["opt"]), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout)["results"][0]["path"] == str(image)


@pytest.mark.parametrize("damage", ["emptied", "garbage"])
def test_a_damaged_catalog_is_one_clear_line(indexed, capsys, damage):
    index, _ = indexed
    catalog = Path(index) / "catalog.db"
    for leftover in Path(index).glob("catalog.db-*"):  # the WAL of the run that built it
        leftover.unlink()
    catalog.write_bytes(b"" if damage == "emptied" else b"this is not a database" * 100)
    assert main(["stats", "--index", index]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error" not in err[0] and "Background" not in err[0]
    expected = "is empty (0 bytes)" if damage == "emptied" else "cannot be read"
    assert expected in err[0] and ("backup" in err[0]), err[0]
    assert catalog.stat().st_size == (0 if damage == "emptied" else 2200)  # nothing overwritten

"""`blip2-search caption` and `demo` end to end, through the real CLI entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli.main import main

DATA = Path(__file__).parent / "data"


@pytest.fixture
def folder(tmp_path, images) -> Path:
    for i, image in enumerate(images[:3]):
        image.save(tmp_path / f"img{i}.png")
    shutil.copy(DATA / "red.png", tmp_path / "red.png")
    return tmp_path


def test_caption_json(folder, tiny_dirs, engines, capsys):
    paths = sorted(str(p) for p in folder.glob("*.png"))
    code = main(["caption", *paths, "--model", str(tiny_dirs["opt"]), "--json", "--batch-size", "2"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["path"] for r in out["results"]] == paths
    assert out["errors"] == []
    from search.media.images import open_image

    expected = engines["opt"].caption([open_image(p) for p in paths])
    assert [r["caption"] for r in out["results"]] == expected


def test_caption_text_and_bad_files(folder, tiny_dirs, capsys):
    (folder / "notes.jpg").write_text("not an image")
    code = main(["caption", str(folder / "red.png"), str(folder / "notes.jpg"), str(folder / "missing.png"),
                 "--model", str(tiny_dirs["t5"])])
    captured = capsys.readouterr()
    assert code == 1  # some files failed: said on stderr, the good one still captioned
    assert captured.out.startswith(f"{folder / 'red.png'}: ")
    assert len(captured.out.strip().splitlines()) == 1
    assert f"{folder / 'notes.jpg'}: error: not an image" in captured.err
    assert f"{folder / 'missing.png'}: error: file not found" in captured.err


def test_caption_json_reports_errors(folder, tiny_dirs, capsys):
    (folder / "empty.png").write_bytes(b"")
    code = main(["caption", str(folder / "empty.png"), "--model", str(tiny_dirs["opt"]), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["results"] == []
    assert out["errors"][0]["path"] == str(folder / "empty.png")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["caption", "x.png", "--model", "nope"], "unknown model 'nope'"),
     (["caption", "x.png", "--batch-size", "0"], "invalid batch_size")],
)
def test_user_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("blip2-search: error: ")
    assert message in err[0]


@pytest.mark.smoke  # the CLI end to end
def test_demo_renders_indexes_and_tours(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "demo-images"), "--json"]) == 0
    tour = json.loads(capsys.readouterr().out)
    assert tour["index"]["added"] == 60 and tour["index"]["failed"] == 0
    assert [s["query"] for s in tour["searches"]] == ["a red circle", "a small yellow star",
                                                     "a blue square on a white background"]
    assert all(len(s["results"]) == 3 for s in tour["searches"])
    assert all(hit["match"] is not None for hit in tour["searches"][2]["results"])  # the reranked one
    assert len(tour["similar"]["results"]) == 3
    records = map(json.loads, (tmp_path / "demo-images" / "records.jsonl").open())
    truth = {r["image"]: r["caption"] for r in records if "caption" in r}
    caption = truth[Path(tour["searches"][0]["results"][0]["path"]).name]  # "... on a {bg} background"
    assert "red circle" in caption  # the demo model tells shapes apart
    assert [(q["question"], q["answer"]) for q in tour["questions"]] == [
        ("what shape is red?", "circle"), ("what color is the background?", caption.split()[-2])]
    assert tour["serve"].startswith("blip2-search serve --index ")
    assert len(list((tmp_path / "demo-images").glob("shapes_*"))) == 60
    # run again: nothing new to index, the same tour
    assert main(["demo", str(tmp_path / "demo-images"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["index"]["unchanged"] == 60 and again["index"]["model_calls"] == 0
    def undated(searches):  # taken_at is the file's mtime here, and the demo writes its files again
        return [{**s, "results": [{**hit, "taken_at": None} for hit in s["results"]]} for s in searches]

    assert undated(again["searches"]) == undated(tour["searches"])
    assert all(hit["taken_at"] for s in again["searches"] for hit in s["results"])

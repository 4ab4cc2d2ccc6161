"""A folder of hostile files: indexing exits 0, valid files come out right, the rest say why."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.collection import Collection

RED, BLUE, GREEN = (220, 40, 40), (40, 80, 220), (40, 170, 60)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(side: int = 30000) -> bytes:
    """A valid PNG header declaring side x side pixels, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **options)
    return buffer.getvalue()


def build_hostile_folder(folder: Path) -> tuple[dict[str, tuple], set[str]]:
    """Write the files; return {valid name: (expected size, expected centre colour)} and bad names."""
    folder.mkdir()
    valid: dict[str, tuple] = {}
    rgb = Image.new("RGB", (40, 40), RED)
    rgb.save(folder / "plain.png")
    valid["plain.png"] = ((40, 40), RED)
    gray16 = np.full((30, 30), 257 * 128, dtype=np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")
    valid["gray16.png"] = ((30, 30), (128, 128, 128))
    Image.new("CMYK", (30, 30), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=95)
    valid["cmyk.jpg"] = ((30, 30), (255, 0, 0))
    palette = Image.new("P", (30, 30), 1)
    palette.putpalette([255, 255, 0] + list(BLUE) + [0] * 762)
    palette.info["transparency"] = 0
    palette.save(folder / "palette.png", transparency=0)
    valid["palette.png"] = ((30, 30), BLUE)
    Image.new("LA", (30, 30), (100, 0)).save(folder / "la.png")  # fully transparent
    valid["la.png"] = ((30, 30), (255, 255, 255))
    Image.new("RGBA", (30, 30), GREEN + (255,)).save(folder / "rgba.png")
    valid["rgba.png"] = ((30, 30), GREEN)
    frames = [Image.new("RGB", (30, 30), c) for c in (GREEN, RED, BLUE)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=40)
    valid["anim.gif"] = ((30, 30), GREEN)
    rotated = Image.new("RGB", (60, 30), RED)
    rotated.paste(BLUE, (0, 0, 30, 30))  # left half blue; EXIF 6 turns it so blue is on top
    exif = Image.Exif()
    exif[0x0112] = 6
    (folder / "rotated.jpg").write_bytes(_jpeg(rotated, exif=exif))
    valid["rotated.jpg"] = ((30, 60), BLUE)  # checked at the top quarter, see below
    (folder / "really_a_jpeg.png").write_bytes(_jpeg(Image.new("RGB", (30, 30), BLUE)))
    valid["really_a_jpeg.png"] = ((30, 30), BLUE)
    Image.new("RGB", (30, 30), GREEN).save(folder / "café_日本.png")
    valid["café_日本.png"] = ((30, 30), GREEN)
    Image.new("RGB", (1, 1), RED).save(folder / "one_pixel.png")
    valid["one_pixel.png"] = ((1, 1), RED)
    for suffix, colour in ((".webp", GREEN), (".bmp", BLUE), (".tiff", RED), (".avif", GREEN)):
        Image.new("RGB", (30, 30), colour).save(folder / f"format{suffix}", quality=95)
        valid[f"format{suffix}"] = ((30, 30), colour)
    (folder / "no_extension").write_bytes(_jpeg(Image.new("RGB", (30, 30), GREEN)))
    valid["no_extension"] = ((30, 30), GREEN)
    (folder / "readme.txt").write_text("not an image and not named like one: skipped, not failed")

    full = _jpeg(Image.new("RGB", (64, 64), RED))
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 3])
    (folder / "zero.png").write_bytes(b"")
    (folder / "random.jpg").write_bytes(random.Random(0).randbytes(4096))
    (folder / "notes.jpg").write_text("this is a text file, not a picture\n")
    (folder / "bomb.png").write_bytes(_bomb_png())
    (folder / "header_only.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 30, 30, 8, 2, 0, 0, 0)))
    os.symlink(folder, folder / "loop")  # a symlink loop back to the folder itself
    bad = {"truncated.jpg", "zero.png", "random.jpg", "notes.jpg", "bomb.png", "header_only.png"}
    return valid, bad


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("hostile")
    valid, bad = build_hostile_folder(root / "files")
    index = root / "index"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "index", str(root / "files"), "--index", str(index),
         "--model", str(tiny_dirs["opt"]), "--json", "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )
    return result, valid, bad, root, index


def test_indexing_exits_0_and_reports_each_bad_file(hostile_run):
    result, valid, bad, root, _ = hostile_run
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["added"] == len(valid)
    assert summary["failed"] == len(bad)
    reasons = {Path(e["path"]).name: e["error"] for e in summary["errors"]}
    assert set(reasons) == bad
    assert "decompression bomb" in reasons["bomb.png"]
    assert "not an image" in reasons["notes.jpg"]
    assert all(reason and "Traceback" not in reason for reason in reasons.values())


def test_valid_files_have_correct_colours_and_orientation(hostile_run):
    _, valid, _, root, index = hostile_run
    collection = Collection.open(index)
    try:
        for name, (size, colour) in valid.items():
            record = collection.image_at(str(root / "files" / name))
            assert record is not None and record.status == "ok", name
            assert (record.width, record.height) == size, name
            thumb = np.asarray(Image.open(collection.thumbnails.path(record.content_hash)).convert("RGB"))
            y = thumb.shape[0] // 4 if name == "rotated.jpg" else thumb.shape[0] // 2
            pixel = thumb[y, thumb.shape[1] // 2].astype(int)
            assert np.abs(pixel - np.array(colour)).max() <= 30, (name, pixel.tolist(), colour)
        assert collection.stats().vectors == len(valid) * collection.model.queries
    finally:
        collection.close()


def test_the_bomb_is_never_decoded(hostile_run):
    """Decoding in a process capped at 512 MB of address space: a decoded 30000x30000 RGB
    bomb would need 2.7 GB, so only a refusal before decoding can give the bomb error."""
    *_, root, _ = hostile_run
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20)); "
            "from search.indexing import decode; from search.records import ImageFile; import sys; "
            "print(decode(ImageFile(sys.argv[1], 0, 0.0)).error)")
    result = subprocess.run([sys.executable, "-c", code, str(root / "files" / "bomb.png")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "decompression bomb" in result.stdout

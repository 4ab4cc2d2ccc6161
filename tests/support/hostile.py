"""A folder of hostile files: every mode and format a picture comes in, named to mislead,
and files that are no picture at all (truncated, empty, random, text, a decompression bomb,
a header alone), with a symlink loop."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE, GREEN = (220, 40, 40), (40, 80, 220), (40, 170, 60)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 30000) -> bytes:
    """A valid PNG header declaring side x side pixels, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def jpeg(image: Image.Image, **options) -> bytes:
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
    (folder / "rotated.jpg").write_bytes(jpeg(rotated, exif=exif))
    valid["rotated.jpg"] = ((30, 60), BLUE)  # checked at the top quarter, see below
    (folder / "really_a_jpeg.png").write_bytes(jpeg(Image.new("RGB", (30, 30), BLUE)))
    valid["really_a_jpeg.png"] = ((30, 30), BLUE)
    Image.new("RGB", (30, 30), GREEN).save(folder / "café_日本.png")
    valid["café_日本.png"] = ((30, 30), GREEN)
    Image.new("RGB", (1, 1), RED).save(folder / "one_pixel.png")
    valid["one_pixel.png"] = ((1, 1), RED)
    for suffix, colour in ((".webp", GREEN), (".bmp", BLUE), (".tiff", RED), (".avif", GREEN)):
        Image.new("RGB", (30, 30), colour).save(folder / f"format{suffix}", quality=95)
        valid[f"format{suffix}"] = ((30, 30), colour)
    (folder / "no_extension").write_bytes(jpeg(Image.new("RGB", (30, 30), GREEN)))
    valid["no_extension"] = ((30, 30), GREEN)
    (folder / "readme.txt").write_text("not an image and not named like one: skipped, not failed")

    full = jpeg(Image.new("RGB", (64, 64), RED))
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 3])
    (folder / "zero.png").write_bytes(b"")
    (folder / "random.jpg").write_bytes(random.Random(0).randbytes(4096))
    (folder / "notes.jpg").write_text("this is a text file, not a picture\n")
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "header_only.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 30, 30, 8, 2, 0, 0, 0)))
    os.symlink(folder, folder / "loop")  # a symlink loop back to the folder itself
    bad = {"truncated.jpg", "zero.png", "random.jpg", "notes.jpg", "bomb.png", "header_only.png"}
    return valid, bad

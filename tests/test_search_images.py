"""Every image mode becomes correct 8-bit RGB; undecodable files raise a readable ImageError."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from search.errors import ImageError
from search.media.images import WORKING_SIDE, load_image, open_image, to_rgb


def test_16_bit_grayscale_is_scaled_not_saturated():
    pixels = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(pixels)))
    assert rgb[0, :, 0].tolist() == [0, 128, 255]


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0  # red is transparent
    rgb = np.asarray(to_rgb(image))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [0, 0, 255]


def test_cmyk_and_la_keep_their_colours():
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # pure red in CMYK
    assert np.asarray(to_rgb(cmyk))[0, 0].tolist() == [255, 0, 0]
    la = Image.new("LA", (1, 1), (100, 0))  # fully transparent gray
    assert np.asarray(to_rgb(la))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    opened = open_image(path)
    assert opened.size == (20, 40)
    top = np.asarray(opened)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the blue half is now on top


def test_first_frame_of_an_animation(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((0, 200, 0), (200, 0, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    assert np.asarray(open_image(path))[4, 4, 1] > 150


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "not an image"), (b"plain text, not a picture", "not an image"),
     (b"\x89PNG\r\n\x1a\n", "not an image")],
)
def test_undecodable_files(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        open_image(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        open_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        open_image(tmp_path / "nothing.png")


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) is rewritten to declare `width` x `height`."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_a_108_megapixel_photo_is_read_small_and_a_bomb_is_still_refused(tmp_path):
    photo = tmp_path / "phone.jpg"
    Image.new("RGB", (12000, 9000), (30, 120, 200)).save(photo, quality=90)
    loaded = load_image(photo)
    assert loaded.size == (12000, 9000)  # the picture's own size, for the catalog
    assert max(loaded.image.size) == WORKING_SIDE  # what the stages get: decoded at an eighth
    assert np.abs(np.asarray(loaded.image)[500, 500].astype(int) - (30, 120, 200)).max() <= 4
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(_jpeg_declaring(60000, 60000))  # 3.6 gigapixels in a few hundred bytes
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(bomb)


def test_the_size_recorded_is_the_oriented_one(tmp_path):
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    Image.new("RGB", (3000, 2000), (10, 200, 10)).save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (2000, 3000) and loaded.image.size == (683, 1024)


def test_a_named_pipe_is_refused_without_waiting(tmp_path):
    """Opening a pipe for reading waits for a writer: for ever. It is refused at once."""
    pipe = tmp_path / "photo.jpg"
    os.mkfifo(pipe)
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(pipe)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_of_a_large_picture_is_applied_after_it_is_cut(tmp_path, orientation):
    """A picture reduced before its conversion (over twice the working size) still turns
    upright: a red mark at the top left of the upright picture is found there."""
    upright = Image.new("RGB", (5000, 3600), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 1000, 700))
    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
               7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}[orientation]
    stored = upright if inverse is None else upright.transpose(inverse)  # FLIP_LEFT_RIGHT is 0
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.png"
    stored.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (5000, 3600) and max(loaded.image.size) == 1024
    pixels = np.asarray(loaded.image)
    assert tuple(pixels[20, 20]) == (255, 0, 0) and tuple(pixels[-20, -20]) == (0, 0, 255)

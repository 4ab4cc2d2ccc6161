"""Opening images defensively and converting every mode to RGB correctly.

`open_image(path)` never decodes a decompression bomb (Pillow refuses it at `open`, before
any pixel is read), nor a picture whose pixels would take over `DECODE_BYTES` as Pillow holds
them (1 byte a pixel for grey and palette, 2 for 16-bit grey, 4 for colour with or without
alpha: 150 megapixels of RGB, 300 of grey), and cuts what it decodes to the working size
before any conversion copies it, so that a picture under both limits takes at most
`DECODE_BYTES` and a few megabytes to decode. It applies the EXIF orientation, keeps the
first frame of animations and returns an RGB image no larger than the stages need
(`WORKING_SIDE`): a JPEG is decoded straight at a half, a quarter or an eighth of its size
(Pillow's draft mode, which costs the memory of the result only), so a 108-megapixel phone
photo takes a few megabytes, not 324.
Every failure is an `ImageError` with a readable reason.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError

MAX_PIXELS = 200_000_000  # larger is refused as a decompression bomb, before decoding
DECODE_BYTES = 600_000_000  # decoded pixels a picture may take, as Pillow holds them (`_within_budget`)
WORKING_SIDE = 1024  # the longer side of what decoding hands on: the model input (224 to 364 px),
# the 256 px thumbnail, and text large enough to read
BACKGROUND = (255, 255, 255)  # what transparent pixels are composited onto

Image.MAX_IMAGE_PIXELS = MAX_PIXELS

try:  # HEIC/HEIF when the optional pillow-heif is installed (pip install "blip2-search[heic]")
    from pillow_heif import register_heif_opener
except ImportError:
    pass
else:
    register_heif_opener()


@dataclass(frozen=True)
class Loaded:
    image: Image.Image  # RGB, EXIF orientation applied, at most `max_side` on its longer side
    taken_at: datetime | None  # EXIF DateTimeOriginal (else DateTime), naive local time
    size: tuple[int, int]  # (width, height) of the full picture, as oriented


def open_image(path: str | Path | BinaryIO, max_side: int | None = WORKING_SIDE) -> Image.Image:
    """Decode `path` into an RGB image at most `max_side` on its longer side (None: its full
    size), or raise `ImageError` saying why it cannot be."""
    return load_image(path, max_side).image


def load_image(path: str | Path | BinaryIO, max_side: int | None = WORKING_SIDE) -> Loaded:
    """Like `open_image`, also returning the date the picture was taken when EXIF has it, and
    the full picture's size."""
    if isinstance(path, str | os.PathLike) and os.path.exists(path) and not os.path.isfile(path) \
            and not os.path.isdir(path):
        raise ImageError("not a regular file (a pipe, a device or a socket)")  # opening a pipe waits for ever
    try:
        with warnings.catch_warnings():
            # Between the limit and twice the limit Pillow only warns; make it an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.seek(0)  # first frame of GIF/APNG/WebP/TIFF animations
                width, height = image.size
                if max_side and image.format == "JPEG":
                    image.draft("RGB", (max_side, max_side))  # decoded at a fraction of its size
                _within_budget(image)
                image.load()
                taken_at = _exif_datetime(image)
                orientation = image.getexif().get(0x0112)
                small = _reduced(image, max_side)  # before any conversion copies the pixels
                rgb = to_rgb(_oriented(small, orientation))
        if max_side:
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return Loaded(rgb, taken_at, (height, width) if orientation in (5, 6, 7, 8) else (width, height))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (decompression bomb limit {MAX_PIXELS:,} pixels): {exc}") from None
    except UnidentifiedImageError:
        raise ImageError("not an image, or a format that cannot be read") from None
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt data surfaces as any of these, depending on the decoder.
        raise ImageError(f"corrupt or truncated image: {exc}") from None


def _within_budget(image: Image.Image) -> None:
    """Refuse a picture whose decoded pixels would pass `DECODE_BYTES`, before decoding it."""
    mode = image.mode
    per_pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4  # as Pillow holds them
    needed = image.size[0] * image.size[1] * per_pixel
    if needed > DECODE_BYTES:
        raise ImageError(f"image too large to decode: {needed / 1e6:,.0f} MB of {mode} pixels, over the "
                         f"{DECODE_BYTES / 1e6:,.0f} MB a picture may take")


def _reduced(image: Image.Image, max_side: int | None) -> Image.Image:
    """The decoded picture cut by a whole factor to at most twice `max_side` (`thumbnail`
    then resizes the RGB result exactly): every copy after it is small, whatever the mode.
    A box average where Pillow has one for the mode, else every n-th pixel (1-bit, palette
    and 16-bit grey)."""
    factor = max(image.size) // (2 * max_side) if max_side else 0
    if factor < 2:
        return image
    try:
        return image.reduce(factor)
    except ValueError:
        size = (max(1, image.size[0] // factor), max(1, image.size[1] // factor))
        return image.resize(size, Image.Resampling.NEAREST)


_TURN = Image.Transpose  # by EXIF orientation: what turns the picture upright
_TRANSPOSE = {2: _TURN.FLIP_LEFT_RIGHT, 3: _TURN.ROTATE_180, 4: _TURN.FLIP_TOP_BOTTOM, 5: _TURN.TRANSPOSE,
              6: _TURN.ROTATE_270, 7: _TURN.TRANSVERSE, 8: _TURN.ROTATE_90}


def _oriented(image: Image.Image, orientation: int | None) -> Image.Image:
    """A copy, upright: it outlives the file it was read from."""
    return image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image.copy()


def _exif_datetime(image: Image.Image) -> datetime | None:
    try:
        exif = image.getexif()
        value = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, DateTime
        return datetime.strptime(str(value).strip("\x00 "), "%Y:%m:%d %H:%M:%S") if value else None
    except (ValueError, TypeError, OSError, SyntaxError):
        return None  # absent or malformed: the file's mtime stands in


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without saturating or dropping information."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), mode), mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Scale high-bit-depth grayscale to 0..255 instead of letting values above 255 saturate."""
    pixels = pixels.astype(np.float32)  # of the reduced picture (`_reduced`): small
    low, high = float(pixels.min(initial=0)), float(pixels.max(initial=0))
    if mode.startswith("I;16") or (low >= 0 and 255 < high <= 65535):
        scaled = pixels / 257.0  # the 16-bit range onto the 8-bit one
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = pixels * 255.0
    elif low >= 0 and high <= 255:
        scaled = pixels
    else:
        scaled = (pixels - low) * 255.0 / (high - low or 1.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def heat_overlay(image: Image.Image, grid) -> Image.Image:
    """`image` (RGB) with a (rows, cols) grid of 0..1 laid over it in red, stronger where
    the value is higher: how an explanation is drawn."""
    values = np.clip(np.asarray(grid, dtype=np.float32), 0, 1)
    heat = Image.fromarray((values * 255).astype(np.uint8), "L").resize(image.size, Image.Resampling.BILINEAR)
    red = Image.new("RGB", image.size, (230, 30, 30))
    return Image.composite(red, image.convert("RGB"), heat.point(lambda v: int(v * 0.6)))

"""Opening images defensively and converting every mode to RGB correctly.

`open_image(path)` never decodes a decompression bomb (Pillow refuses it at `open`, before
any pixel is read), applies the EXIF orientation, keeps the first frame of animations and
returns an RGB image. Every failure is an `ImageError` with a readable reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

MAX_PIXELS = 89_478_485  # Pillow's default bomb limit (about 9,459 x 9,459), made explicit
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
    image: Image.Image  # RGB, EXIF orientation applied
    taken_at: datetime | None  # EXIF DateTimeOriginal (else DateTime), naive local time


def open_image(path: str | Path | BinaryIO) -> Image.Image:
    """Decode `path` into an RGB image, or raise `ImageError` saying why it cannot be."""
    return load_image(path).image


def load_image(path: str | Path | BinaryIO) -> Loaded:
    """Like `open_image`, also returning the date the picture was taken when EXIF has it."""
    try:
        with warnings.catch_warnings():
            # Between the limit and twice the limit Pillow only warns; make it an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.seek(0)  # first frame of GIF/APNG/WebP/TIFF animations
                image.load()
                taken_at = _exif_datetime(image)
                oriented = ImageOps.exif_transpose(image)
                return Loaded(to_rgb(oriented), taken_at)
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
    pixels = pixels.astype(np.float64)
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

"""Decoding within a budget: a small file that decodes to gigabytes is refused before it is
decoded, and one within the budget takes its pixels and a few megabytes, whatever its mode.
Each decode runs in a fresh process, which reports its own peak resident memory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from search.media.images import DECODE_BYTES

pytestmark = pytest.mark.slow  # pictures of 150 to 196 megapixels, written and decoded

MEASURE = """
import json, resource, sys
from search.media.images import load_image
from search.errors import ImageError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    loaded = load_image(sys.argv[1])
    outcome = [loaded.image.mode, list(loaded.image.size), list(loaded.size)]
except ImageError as exc:
    outcome = str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "grown_mb": grown / 1024}))
"""


def _decode(path) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize(("mode", "side", "fill"), [("I;16", 14_000, 40_000), ("LA", 12_000, (90, 128)),
                                                    ("RGBA", 12_000, (10, 200, 30, 128))])
def test_a_picture_within_the_budget_takes_its_pixels_and_little_more(tmp_path, mode, side, fill):
    """196 MP of 16-bit grey (the 416 KB file that took a server from 0.5 to 7.3 GB) and
    144 MP with alpha (three full-size copies before): their decoded pixels and at most
    60 MB more."""
    path = tmp_path / "big.png"
    Image.new(mode, (side, side), fill).save(path, compress_level=1)
    found = _decode(path)
    decoded = side * side * (2 if mode == "I;16" else 4) / 2**20
    assert found["outcome"] == ["RGB", [1024, 1024], [side, side]], found
    assert found["grown_mb"] <= decoded + 60, (found, decoded)


def test_a_picture_past_the_budget_is_refused_before_it_is_decoded(tmp_path):
    side = 13_000  # 169 MP of RGBA: 676 MB as Pillow holds it, under the pixel limit
    path = tmp_path / "wide.png"
    Image.new("RGBA", (side, side), (1, 2, 3, 4)).save(path, compress_level=1)
    found = _decode(path)
    assert side * side * 4 > DECODE_BYTES
    assert "too large to decode" in found["outcome"] and found["grown_mb"] < 50, found

"""search.media.ocr: real RapidOCR on rendered pictures with known words; textmatch: the
phrase matching."""

from __future__ import annotations

import importlib.util
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from search.media.needles import needles
from search.media.ocr import MAX_LINES, MAX_WIDTH, Line, TextReader, select_lines
from search.media.textmatch import key, phrase_score, text_matches, words
from tests.support.needs import missing
from tests.support.words import page, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reader() -> TextReader:
    for package in ("rapidocr", "onnxruntime"):
        if importlib.util.find_spec(package) is None:
            missing(package)
    return TextReader()


@pytest.mark.slow  # hundreds of rendered words read
def test_word_recall_on_rendered_pictures(reader, tmp_path):
    pictures = render(tmp_path, 40, seed=2024)
    assert {p.path.suffix for p in pictures} == {".jpg", ".png"}
    found = total = 0
    missed = []
    for picture in pictures:
        words = {w.casefold() for w in re.findall(r"[^\W_]+", reader.read_path(picture.path))}
        hits = [w for w in picture.words if w.casefold() in words]
        found, total = found + len(hits), total + len(picture.words)
        missed += [f"{picture.path.name}:{w}" for w in picture.words if w not in hits]
    print(f"word recall {found}/{total}; missed {missed}")
    # observed: 225 of 230 (0.978; the target 0.95), give or take two
    assert total == 230 and found >= 225 - 2, f"word recall {found}/{total}; missed {missed}"


def test_reading_order_and_empty_picture(reader, tmp_path):
    (picture,) = render(tmp_path, 1, seed=3)
    text = reader.read_path(picture.path)
    assert text.split() == picture.words  # top to bottom, left to right
    assert len(text.splitlines()) > 1
    assert reader.read(Image.new("RGB", (400, 300), (240, 240, 240))) == ""


def test_dense_page_reads_its_largest_text_within_the_bound(reader, tmp_path):
    drawn = page(tmp_path / "page.png", lines=48, seed=1)
    lines = [line.split() for line in reader.read_path(tmp_path / "page.png").splitlines()]
    # Decoded to 731 x 1024, each line of small print is at least 24 times as wide as it is
    # tall, so the width budget holds at most 31 of them (all 48 and the heading were read before).
    assert 4 <= len(lines) <= min(MAX_LINES, 1 + int(MAX_WIDTH) // 24), lines
    assert lines[0] == drawn[0]  # the heading, the largest text, first
    found = [next((at for at, line in enumerate(drawn) if _same_line(read, line)), -1) for read in lines[1:]]
    assert -1 not in found and found == sorted(found), found  # then small print, drawn lines in order
    assert found[:4] == [1, 2, 3, 4]  # from the top


def test_select_lines_largest_first_within_the_budget():
    sign = [Line(60, 400, 300, 40), Line(60, 300, 300, 500), Line(90, 500, 100, 60), Line(58, 200, 400, 40)]
    assert select_lines(sign) == [2, 0, 1, 3]  # the tallest; then one size (60 and 58) in reading order
    body = [Line(21 + row % 5, 640, 100 + 26 * row, 30) for row in range(48)]  # descenders vary the height
    heading = Line(48, 560, 20, 30)
    assert select_lines([*body, heading]) == [48, *range(24)]  # the heading, 24 lines of ~28 units
    assert select_lines(body) == list(range(25))
    specks = [Line(20, 20, row, 0) for row in range(200)]  # each padded to 320 x 48: 6.7 units
    assert select_lines(specks) == list(range(MAX_LINES))
    too_wide = Line(30, int(30 * (MAX_WIDTH + 1)), 0, 0)
    assert select_lines([too_wide, Line(20, 400, 50, 0)]) == [1]  # skipped; the next one still fits
    assert select_lines([]) == []


TEXT = "Parking RE16 TGK\nPlease receive the Garden parcel"


def words_at(spans: list[tuple[int, int]]) -> list[str]:
    return [TEXT[start:end] for start, end in spans]


@pytest.mark.parametrize(
    ("phrase", "words"),
    [
        ("RE16", ["RE16"]),  # exact
        ("re16 tgk", ["RE16", "TGK"]),  # case
        ("RE1", ["RE16"]),  # the start of a code
        ("E16", ["RE16"]),  # inside a word
        ("recieve", ["receive"]),  # two letters swapped
        ("gardan", ["Garden"]),  # one letter wrong in a word of five or more
        ("parce", ["parcel"]),  # typed in part
        ("banana", []),  # unrelated
        ("RE17", []),  # one slip in a word of four is too many
        ("house", []),
    ],
)
def test_text_matches(phrase, words):
    assert words_at(text_matches(TEXT, phrase)) == words


def test_text_matches_spans():
    assert text_matches(TEXT, "tgk") == [(13, 16)]
    assert text_matches("", "tgk") == [] and text_matches(TEXT, "") == []


def test_phrase_score_ranks():
    assert phrase_score(TEXT, "RE16 TGK") == 1.0  # every word, exactly, in order
    assert phrase_score(TEXT, "TGK RE16") < 1.0  # out of order
    assert 0 < phrase_score(TEXT, "recieve") < phrase_score(TEXT, "RE1") < phrase_score(TEXT, "RE16")
    assert phrase_score(TEXT, "banana") == 0.0
    assert phrase_score(TEXT, "banana garden") == 0.0  # every word is needed
    assert phrase_score("", "garden") == 0.0


def test_words_are_compared_folded():
    """Case, accents (precomposed or combining marks), `ß` and compatibility forms fold away;
    the marks span the words as written."""
    assert words("Grüße GRÜSSE Gru\u0308ße ﬁx İstanbul café 7.40") == [
        "grusse", "grusse", "grusse", "fix", "istanbul", "cafe", "7", "40"]
    assert phrase_score("Grüße aus Berlin", "grusse") == phrase_score("GRÜSSE", "Grüße") == 1.0
    assert text_matches("x Gru\u0308ße y", "GRUSSE") == [(2, 8)]
    assert text_matches("Hauptstraße 5", "strasse") == [(0, 11)]


def test_needles_find_every_text_the_rule_accepts():
    """Seeded words of 1 to 20 letters from a small alphabet, and texts of the same words
    with up to five slips each, some split in two: wherever the rule accepts the text, its
    key holds a pattern of each list of the word's needles (`_` any one character)."""
    rng = random.Random(20261206)
    accepted = 0
    for _ in range(5000):
        typed = "".join(rng.choice("abc") for _ in range(rng.randint(1, 20)))
        text = " ".join(_slipped(typed, rng) for _ in range(rng.randint(1, 3))).strip()
        if phrase_score(text, typed) > 0:
            accepted += 1
            assert all(any(_holds(key(text), p) for p in ps) for ps in needles(typed)), (typed, text)
    assert accepted > 4000
    for typed in ("hose", "house", "lemonade", "lemonades", "lighthouse", "abcdabcdabcd"):
        for text in {twice for once in _one_edit(typed) for twice in _one_edit(once)}:  # up to 2 edits away
            if phrase_score(text, typed) > 0:
                assert all(any(_holds(key(text), p) for p in ps) for ps in needles(typed)), (typed, text)
    [house] = needles("house")  # one slip in five letters: one way to cut the word
    assert {"ho_se", "hose", "hosue", "hou_se"} <= set(house)  # howse, hose, hosue, hourse
    assert needles("re1") == [["re1"]]  # no slip in three letters


def _one_edit(word: str) -> set[str]:
    """`word` and every word one letter changed (to x), added (x), dropped or swapped away."""
    found = {word}
    for i in range(len(word) + 1):
        found |= {word[:i] + "x" + word[i + 1 :], word[:i] + "x" + word[i:], word[:i] + word[i + 1 :]}
        found.add(word[:i] + word[i + 1 : i + 2] + word[i : i + 1] + word[i + 2 :])
    return found - {""}


def _holds(text: str, pattern: str) -> bool:
    """Whether `text` holds `pattern`, whose `_` (at most one, inside it) is any one character."""
    before, _, after = pattern.partition("_")
    if not after:
        return pattern in text
    start = text.find(before)
    while start != -1:
        if text.startswith(after, start + len(before) + 1):
            return True
        start = text.find(before, start + 1)
    return False


def _slipped(word: str, rng: random.Random) -> str:
    letters = list(word)
    for _ in range(rng.randint(0, 5)):
        at = rng.randint(0, len(letters))
        slip = rng.randrange(4)
        if slip == 0 and at < len(letters):
            letters[at] = rng.choice("abcd")
        elif slip == 1:
            letters.insert(at, rng.choice("abcd"))
        elif slip == 2 and at < len(letters):
            del letters[at]
        elif slip == 3 and at + 1 < len(letters):
            letters[at], letters[at + 1] = letters[at + 1], letters[at]
    cut = rng.randint(0, len(letters)) if rng.random() < 0.3 else 0
    return "".join(letters[:cut]) + " " + "".join(letters[cut:])


def test_missing_rapidocr_is_a_clear_error():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["rapidocr"] = None  # as if it were not installed
        from PIL import Image
        from search.media.ocr import OcrUnavailable, TextReader
        try:
            TextReader().read(Image.new("RGB", (64, 64)))
        except OcrUnavailable as exc:
            print(exc)
        else:
            print("no error")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    message = result.stdout.strip()
    assert result.returncode == 0, result.stderr
    assert "rapidocr" in message and "--no-ocr" in message and "\n" not in message, message


def _same_line(read: list[str], drawn: list[str]) -> bool:
    """At least 80 % of the drawn words read, in place (a word misread here and there)."""
    return sum(a == b for a, b in zip(read, drawn, strict=False)) >= 0.8 * len(drawn)

"""A mixed library for the duplicate finder: what joins different pictures when only layout or
meaning is compared. Added to the shapes set of `duplicate_images`:
- documents: invoices from one template (the same header, table and totals box) with other
  customers, items and amounts, each with near copies;
- screenshots: chat screens of one layout (the same bars and bubbles) with other messages,
  each with near copies;
- colour-inverted and left-right mirrored versions of some originals, each a picture of its own
  (a mirror image only of an original that is not symmetric).

`write_mixed(folder, seed, originals, documents)` writes the files and returns the
`DuplicateSet` that knows which files show the same picture (`score` measures groups on it).
"""

from __future__ import annotations

import random
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .duplicate_images import DuplicateSet, _altered, _save, score, write_set

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
NAMES = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
         "Donald Knuth", "Frances Allen", "John Backus", "Niklaus Wirth", "Margaret Hamilton", "Ken Thompson",
         "Leslie Lamport")
ITEMS = ("Paper A4 box", "Toner cartridge", "Desk lamp", "Office chair", "USB cable", "Monitor stand",
         "Notebook pack", "Stapler", "Whiteboard", "Printer service", "Coffee beans", "Delivery")
LINES = ("are we still on for lunch?", "the train is late again", "can you send the file",
         "I booked the table for eight", "happy birthday!", "see you at the station",
         "the meeting moved to 3 pm", "did you feed the cat", "running ten minutes late",
         "the tickets are sold out", "call me when you land", "great photos from the trip")


def write_mixed(folder: Path, seed: int, originals: int = 40, documents: int = 12) -> DuplicateSet:
    made = write_set(folder, seed, originals)
    rng = random.Random(seed * 7919 + 1)
    picture = max(made.picture.values()) + 1
    for kind, draw in (("invoice", _invoice), ("chat", _chat)):
        for i in range(documents):
            image = draw(rng)
            stem = folder / f"{kind}{i:02d}"
            made.picture[str(_save(stem, image, "PNG", rng))] = picture
            for j in range(rng.randint(1, 2)):
                copy = _save(folder / f"{kind}{i:02d}_copy{j}", _altered(image, rng),
                             rng.choice(("JPEG", "WEBP")), rng)
                made.picture[str(copy)] = picture
            picture += 1
    for i, original in sorted(made.originals.items())[: originals // 2]:
        source = Image.open(original).convert("RGB")
        edit = ImageOps.invert(source) if i % 2 else ImageOps.mirror(source)
        if not i % 2 and _symmetric(source):
            continue  # its mirror image is the same picture
        path = _save(folder / f"p{i:03d}_{'inverted' if i % 2 else 'mirrored'}", edit, "PNG", rng)
        made.picture[str(path)] = picture
        made.lookalike[str(path)] = original
        picture += 1
    return made


def _symmetric(image: Image.Image) -> bool:
    """The picture is its own mirror image about some vertical axis within 8 % of its middle:
    the grey levels (64 x 64) and their mirror image, shifted by up to 5 columns, correlate
    at 0.9 or more where they overlap."""
    grey = np.asarray(image.convert("L").resize((64, 64)), dtype=np.float32)
    mirror = grey[:, ::-1]
    for shift in range(-5, 6):
        a, b = grey[:, max(shift, 0): 64 + min(shift, 0)], mirror[:, max(-shift, 0): 64 + min(-shift, 0)]
        a, b = a - a.mean(), b - b.mean()
        if float((a * b).sum()) >= 0.9 * max(float(np.sqrt((a * a).sum() * (b * b).sum())), 1e-6):
            return True
    return False


def _invoice(rng: random.Random) -> Image.Image:
    """An A-format page (600 x 800): the template's header, table and totals box, then one
    customer's lines."""
    page = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(page)
    big, text, bold = ImageFont.truetype(BOLD, 34), ImageFont.truetype(FONT, 17), ImageFont.truetype(BOLD, 17)
    draw.rectangle((40, 40, 120, 110), fill=(30, 80, 160))
    draw.text((150, 50), "INVOICE", font=big, fill="black")
    draw.text((150, 92), f"No. {rng.randint(10000, 99999)}   Date 2026-{rng.randint(1, 12):02d}-"
                         f"{rng.randint(1, 28):02d}", font=text, fill="black")
    draw.text((40, 150), "Bill to:", font=bold, fill="black")
    draw.text((40, 175), rng.choice(NAMES), font=text, fill="black")
    draw.text((40, 198), f"{rng.randint(1, 250)} {rng.choice(('Main', 'High', 'Park', 'Mill'))} Street",
              font=text, fill="black")
    draw.rectangle((40, 250, 560, 280), fill=(225, 225, 225))
    for x, head in ((50, "Item"), (330, "Qty"), (400, "Price"), (480, "Total")):
        draw.text((x, 255), head, font=bold, fill="black")
    total = 0
    for row, item in enumerate(rng.sample(ITEMS, rng.randint(3, 8))):
        y, qty, price = 292 + row * 34, rng.randint(1, 9), rng.randint(2, 400)
        total += qty * price
        for x, value in ((50, item), (330, str(qty)), (400, f"{price}.00"), (480, f"{qty * price}.00")):
            draw.text((x, y), value, font=text, fill="black")
        draw.line((40, y + 28, 560, y + 28), fill=(200, 200, 200))
    draw.rectangle((330, 640, 560, 700), outline="black", width=2)
    draw.text((345, 658), f"Total  {total}.00 EUR", font=bold, fill="black")
    draw.text((40, 740), "Thank you for your business.", font=text, fill=(90, 90, 90))
    return page


def _chat(rng: random.Random) -> Image.Image:
    """A phone chat screen (390 x 844): the same bars and bubble places, other messages."""
    screen = Image.new("RGB", (390, 844), (236, 229, 221))
    draw = ImageDraw.Draw(screen)
    text, bold = ImageFont.truetype(FONT, 16), ImageFont.truetype(BOLD, 18)
    draw.rectangle((0, 0, 390, 90), fill=(7, 94, 84))
    draw.ellipse((14, 38, 54, 78), fill=(200, 200, 200))
    draw.text((66, 48), rng.choice(NAMES), font=bold, fill="white")
    for row in range(7):
        mine, y = row % 2 == 1, 110 + row * 95
        x0, x1 = (120, 375) if mine else (15, 270)
        draw.rounded_rectangle((x0, y, x1, y + 70), radius=12, fill=(220, 248, 198) if mine else "white")
        draw.text((x0 + 12, y + 14), rng.choice(LINES), font=text, fill="black")
        draw.text((x1 - 52, y + 46), f"{rng.randint(7, 22)}:{rng.randint(0, 59):02d}", font=text,
                  fill=(120, 120, 120))
    draw.rectangle((0, 784, 390, 844), fill=(245, 245, 245))
    draw.rounded_rectangle((12, 796, 320, 832), radius=18, fill="white")
    return screen


def breakdown(made: DuplicateSet, groups: list[list[str]]) -> str:
    """`score`, then by kind: pairs found of each kind's true pairs, and the wrong pairs joined
    (a look-alike, inverted or mirrored picture with its original; two documents or screens of
    other content; any other)."""
    found = {frozenset(pair) for paths in groups for pair in combinations(paths, 2)}
    truth = made.pairs()
    kinds = {"shapes": [], "invoices": [], "chat screens": []}
    for pair in truth:
        name = Path(next(iter(pair))).name
        kinds["invoices" if name.startswith("invoice") else "chat screens" if name.startswith("chat")
              else "shapes"].append(pair in found)
    wrong: dict[str, int] = {}
    for pair in found - truth:
        a, b = sorted(Path(path).stem for path in pair)
        kind = next((edit for edit in ("lookalike", "inverted", "mirrored") if edit in a + b),
                    "document" if a[:4] in ("invo", "chat") and b[:4] in ("invo", "chat") else "other")
        wrong[kind] = wrong.get(kind, 0) + 1
    found_by_kind = ", ".join(f"{kind} {sum(hits)}/{len(hits)}" for kind, hits in kinds.items())
    return f"{score(made, groups)}; found {found_by_kind}; wrong pairs {wrong or 'none'}"


if __name__ == "__main__":
    import sys

    from .duplicate_images import THRESHOLDS, calibrate

    seed, count, documents = (int(arg) for arg in sys.argv[1:4])
    for threshold, got in calibrate(seed, count, THRESHOLDS,
                                    lambda folder, seed, count: write_mixed(folder, seed, count, documents),
                                    breakdown):
        print(f"mixed seed {seed}, {count} originals, {documents} documents and screens a kind, "  # noqa: T201
              f"threshold {threshold:.2f}: {got}")

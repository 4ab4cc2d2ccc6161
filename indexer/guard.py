"""Mount safety: a run removes images from the catalog only when their root is surely there.

A disk that is not mounted looks like an empty folder, or like a folder holding something
else; a run that believed it would drop every image of the root (Immich #30817: 68,811
assets in 6.6 s). Two guards, as Syncthing has them:

- **The marker.** The first run over a root leaves a small hidden file in it (`MARKER`).
  A later run over the root, or over a folder inside it, that finds no marker removes
  nothing: the root is *paused*, with the reason. A run that finds every indexed image of
  the root still in place puts the marker back (an index made before markers existed, or
  a marker deleted by hand: nothing is at risk).
- **The removal cap.** One run never removes more than a share of a root's images (the
  share of the images the catalog held under it; always at least `ALWAYS_REMOVABLE`, so
  that deleting a few photos from a small folder just works). Past the cap nothing is
  removed and the root is paused; the run's other changes (new, changed, moved files) go
  on, since they lose nothing.

A root emptied altogether is refused earlier, by `scan.plan_roots` (nothing changes).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from search.schemas import PausedRoot

from .plan import Plan

MARKER = ".blip2-search-root"  # hidden: the walk skips it
MARKER_TEXT = ("This folder is indexed by blip2-search. While this file is here, images that vanish "
               "from the folder are removed from the index; without it, nothing is removed.\n")
ALWAYS_REMOVABLE = 10  # a run may always remove this many images of a root, whatever the share
DEFAULT_SHARE = 0.10


def marked_root(folder: Path) -> Path | None:
    """The nearest folder at or above `folder` that holds a marker, or None."""
    for candidate in (folder, *folder.parents):
        if (candidate / MARKER).is_file():
            return candidate
    return None


def place_marker(root: Path) -> None:
    """Leave the marker in `root`; a read-only root keeps none (its removals are then held
    back whenever images vanish from it, until a run with the override)."""
    try:
        (root / MARKER).write_text(MARKER_TEXT)
    except OSError:
        pass


def guard(plans: list[Plan], max_removals: float | None = DEFAULT_SHARE) -> list[PausedRoot]:
    """Hold back each plan's removals that are not safe (emptying `plan.removed`), and say
    why for each root held back. `max_removals`: the share of a root's images one run may
    remove (1 or None: the user's override, nothing held back). Moves found by another plan
    of the run are not removals (a file moved between two folders planned apart)."""
    moved = {record.id for root_plan in plans for record, _ in root_plan.moved}
    paused = []
    for root_plan in plans:
        root_plan.removed = [record for record in root_plan.removed if record.id not in moved]
        reason = _unsafe(root_plan, max_removals)
        if reason:
            paused.append(PausedRoot(root=root_plan.root, reason=reason, since=time.time()))
            root_plan.removed = []
    return paused


def _unsafe(root_plan: Plan, max_removals: float | None) -> str | None:
    """Why the plan's removals must wait, or None."""
    if not root_plan.removed or max_removals is None or max_removals >= 1:
        return None
    root = Path(root_plan.root)
    if marked_root(root) is None:
        count = len(root_plan.removed)
        return (f"the marker {root / MARKER} is missing: is the disk mounted? {count} vanished "
                f"image{'s' * (count != 1)} kept; `blip2-search index {root} --max-removals 1` removes "
                "them and puts the marker back")
    allowed = max(ALWAYS_REMOVABLE, math.floor(max_removals * root_plan.known))
    if len(root_plan.removed) > allowed:
        return (f"{len(root_plan.removed)} of its {root_plan.known} images vanished, more than "
                f"{max_removals:.0%} in one pass: none removed (is the disk whole?); "
                f"`blip2-search index {root} --max-removals 1` removes them")
    return None


def mark(plans: list[Plan], paused: list[PausedRoot]) -> None:
    """After a run: the marker in each root that has none at or above it and was not paused."""
    held = {p.root for p in paused}
    for root_plan in plans:
        root = Path(root_plan.root)
        if root_plan.root not in held and marked_root(root) is None:
            place_marker(root)

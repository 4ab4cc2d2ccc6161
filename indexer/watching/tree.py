"""Which folders of a root get file-system watches: all of them but the skipped ones (hidden,
excluded, the index folder) and what lies under those, in as few watches as they allow.

inotify watches are per folder and limited per user (`fs.inotify.max_user_watches`; Immich
#15426: a library's watches exhausted them and broke other services). A root with nothing to
skip is one recursive watch. Otherwise each folder above a skipped one is watched alone
(its own files and subfolders coming and going), and every subtree free of skipped folders
is watched whole; a skipped folder has no watch at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Watches:
    whole: list[Path] = field(default_factory=list)  # watched with everything under them
    alone: list[Path] = field(default_factory=list)  # watched for their own entries only


def watches(root: Path, skipped: Callable[[str], bool]) -> Watches:
    """The watches that cover `root` but the folders `skipped(path)` names. Symbolic links to
    folders are not followed (a watch follows none)."""
    found = Watches()
    if _visit(root, skipped, found):
        found.whole.append(root)
    return found


def _visit(folder: Path, skipped: Callable[[str], bool], found: Watches) -> bool:
    """Whether nothing under `folder` is skipped (then its parent may watch it whole); when
    something is, `folder` is watched alone and its clean children whole."""
    try:
        children = [Path(entry.path) for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return True  # unreadable or gone: a whole watch over it is what a walk would give
    clean = {child: not skipped(str(child)) and _visit(child, skipped, found) for child in sorted(children)}
    if all(clean.values()):
        return True
    found.alone.append(folder)
    found.whole.extend(child for child, whole in clean.items() if whole)
    return False

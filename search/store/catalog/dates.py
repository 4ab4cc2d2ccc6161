"""An image's date as one number: its EXIF date (naive local time, as cameras write it), else
its file's modification time, in seconds since the epoch."""

from __future__ import annotations

from datetime import datetime


def seconds(taken: datetime | None, mtime: float) -> float:
    if taken is None:
        return mtime
    try:
        return taken.timestamp()  # naive: local time, as EXIF dates are
    except (ValueError, OverflowError, OSError):  # year 1 or 9999: out of the local clock's range
        return (taken - datetime(1970, 1, 1)).total_seconds()


def local(bound: datetime) -> datetime:
    """`bound` as naive local time, as EXIF dates are: an aware one is converted."""
    return bound.astimezone().replace(tzinfo=None) if bound.tzinfo is not None else bound

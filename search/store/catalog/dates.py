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
    """`bound` as naive local time, as EXIF dates are: an aware one is converted; one that
    falls outside the years 1 to 9999 there (`0001-01-01T00:00+14:00`) is the first or the
    last moment a date can hold."""
    if bound.tzinfo is None:
        return bound
    try:
        return bound.astimezone().replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return datetime.min if bound.year < 5000 else datetime.max

"""Watch folders: follow roots' changes and keep the index up to date (`Watcher`)."""

from .watcher import Watcher, WatchOptions

__all__ = ["Watcher", "WatchOptions"]

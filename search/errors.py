"""Exceptions the library raises. Each message is one line a user can act on."""


def describe(exc: BaseException) -> str:
    """An error as one line a user can read: an OSError's reason and path (a full disk, a
    folder that cannot be written), else the message's first line, else the error's name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class SearchError(Exception):
    """Base class: a user-facing problem (bad input, missing model, bad index)."""


class ModelNotAvailable(SearchError):
    """The requested checkpoint cannot be found or loaded."""


class ConfigError(SearchError):
    """An option has a value the engine cannot honour (unknown device, dtype...)."""


class ImageError(SearchError):
    """A file could not be decoded as an image; the message says why."""


class VideoError(ImageError):
    """A file could not be read as a video; the message says why, in one line."""


class InputError(SearchError, ValueError):
    """A request is malformed: an empty question, an empty query, a bad argument."""


class CatalogError(SearchError):
    """The catalog cannot be opened: damaged, emptied, or unreachable."""


class NotFound(SearchError, LookupError):
    """No image with that id, or its file is gone."""


class CollectionError(SearchError):
    """The index folder is missing, or was built with another model."""

"""The catalog: the store of record (images, their vectors, index facts). Only SQLAlchemy user."""

from .connect import FILENAME, database_url
from .store import Catalog

__all__ = ["FILENAME", "Catalog", "database_url"]

"""The catalog: the store of record (images, their vectors, index facts). Only SQLAlchemy user."""

from .store import FILENAME, Catalog, database_url

__all__ = ["FILENAME", "Catalog", "database_url"]

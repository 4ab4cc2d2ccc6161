"""The catalog: the store of record (images, their vectors, index facts). Only SQLAlchemy user."""

from .store import Catalog, database_url

__all__ = ["Catalog", "database_url"]

"""The catalog: the store of record (images, their vectors, index facts). Only SQLAlchemy user."""

from .records import ImageRecord, NewImage
from .store import Catalog, database_url

__all__ = ["Catalog", "ImageRecord", "NewImage", "database_url"]

"""The catalog: the store of record (images, their vectors, index facts). Only SQLAlchemy user."""

from .store import Catalog, ImageRecord, NewImage, database_url

__all__ = ["Catalog", "ImageRecord", "NewImage", "database_url"]

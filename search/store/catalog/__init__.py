"""The catalog: the store of record (images, their vectors, facts about the index). The only
package that imports SQLAlchemy and Alembic."""

from .connect import FILENAME, database_url
from .database import Catalog

__all__ = ["FILENAME", "Catalog", "database_url"]

"""What an index folder holds, and how each part is kept: the catalog (the store of record,
SQLAlchemy), the vector index (FAISS) and its snapshot, thumbnails, stored image features,
the writer lock. `search.collection.Collection` keeps them in step; nothing else writes them.
"""

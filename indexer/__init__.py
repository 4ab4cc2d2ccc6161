"""Turning folders into an index: the scan, the decoding workers, the local driver
(`pipeline`) and the Ray driver (`distributed`), over `search.indexing`'s steps."""

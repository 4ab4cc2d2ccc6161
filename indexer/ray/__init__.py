"""`index --ray`: the driver (`driver`: plan here, embed on Ray, merge here), the Ray Data job
(`data`, the only module importing ray) and the Parquet shards between them (`shards`)."""

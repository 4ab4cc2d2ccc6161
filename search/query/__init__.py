"""Queries over a collection: text search in the query language (`searcher`, `language`),
similar images, questions about hits and the match head (`questions`, `where`), exact
scores from stored vectors (`scoring`) and duplicate pictures (`duplicates`).
"""

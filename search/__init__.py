"""blip2-search: the engine, a library.

`Collection` (`collection`: an index folder) and `Searcher` (`query.searcher`: the queries
over one) are what the front ends use. The packages are the table of contents: `store`
(what an index folder holds), `query`, `media` (what a picture holds), `models` (BLIP-2).
Importing this package loads no model and imports no torch.
"""

__version__ = "0.1.0"  # the distribution's version (pyproject reads it) and the API's

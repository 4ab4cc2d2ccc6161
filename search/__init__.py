"""blip2-search: the engine, a library.

`Collection` (an index folder) and `Searcher` (the queries over one) are what the front ends
use; `indexing` holds the steps the indexing drivers run. The README's Layout section is the
table of contents. Importing this package loads no model and imports no torch.
"""

__version__ = "0.1.0"

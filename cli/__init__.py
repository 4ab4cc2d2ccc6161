"""The `blip2-search` command line: one module per command, each with its arguments beside
its body, over the `search` library (and `indexer`, `api` where a command needs them)."""

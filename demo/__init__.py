"""The demo world: the shapes-world renderer, the demo model's training, and its shipped
weights (`model/`, the `demo` preset). Production code (search, indexer, api) never imports
it; the `demo` and `train-demo` commands, the tests and the benchmarks do."""

"""The demo world: the shapes-world renderer, the demo model's training, and tiny BLIP-2
checkpoints for tests. Production code does not import it; the `demo` and `train-demo`
commands and the tests do."""

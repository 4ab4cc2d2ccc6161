"""Turning folders into an index: what changed (`plan`), the steps every driver runs
(`steps`: decode, embed, commit), the walk (`scan`), the decoding workers, the local driver
(`pipeline`) and the Ray driver (`ray`)."""

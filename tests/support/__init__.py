"""What the tests share: tiny checkpoints built in-process, renderers of pictures with known
content, and harnesses for the real server, Chromium, PostgreSQL and killed indexers."""

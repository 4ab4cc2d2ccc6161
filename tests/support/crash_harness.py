"""Run `blip2-search` and kill this process with SIGKILL at a chosen point (crash tests).

    python tests/support/crash_harness.py MODE N -- CLI ARGS...

MODE: `after-commit` (right after the N-th batch commit), `in-commit` (at the N-th
database commit, before it completes), `snapshot-rename` (the N-th snapshot fully written,
not renamed), `snapshot-half` (half of the N-th snapshot written), `after-shard` (right
after the N-th Parquet shard of `index --ray` is written), or `none`.
"""

from __future__ import annotations

import os
import signal
import sys


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(mode: str, n: int) -> None:
    from sqlalchemy import Engine, event

    from search.store import atomic  # writes the vector snapshots (and thumbnails, not counted)
    from search.store.catalog import database
    from search.store.snapshot import SNAPSHOT

    calls = {"count": 0}
    if mode == "after-commit":
        write = database.Catalog.write

        def write_then_die(self, images, **options):
            ids = write(self, images, **options)
            calls["count"] += 1
            if calls["count"] == n:
                die()
            return ids

        database.Catalog.write = write_then_die
    elif mode == "after-shard":
        from indexer.ray import shards

        write_shard = shards.ShardFolder.write

        def write_shard_then_die(self, name, rows):
            write_shard(self, name, rows)
            calls["count"] += 1
            if calls["count"] == n:
                die()

        shards.ShardFolder.write = write_shard_then_die
    elif mode == "in-commit":
        # Fires when a transaction is about to be committed: its rows are written, not durable.

        def commit_or_die(connection):
            calls["count"] += 1
            if calls["count"] == n:
                die()

        event.listen(Engine, "commit", commit_or_die)
    elif mode == "snapshot-rename":
        class SnapshotOs:  # counts the renames of snapshot files only, not of thumbnails
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def replace(source, target):
                if str(target).endswith(SNAPSHOT):
                    calls["count"] += 1
                    if calls["count"] == n:
                        die()
                return os.replace(source, target)

        atomic.os = SnapshotOs()
    elif mode == "snapshot-half":
        class HalfFile:
            def __init__(self, handle):
                self.handle = handle

            def write(self, data):
                if len(data) > 64 and calls["count"] == n:
                    self.handle.write(data[: len(data) // 2])
                    self.handle.flush()
                    die()
                return self.handle.write(data)

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self.handle.__exit__(*exc)

        real_open = open

        def counting_open(path, mode="r", *args, **kwargs):
            if f".{SNAPSHOT}." not in str(path):  # a thumbnail's temp file
                return real_open(path, mode, *args, **kwargs)
            calls["count"] += 1
            return HalfFile(real_open(path, mode, *args, **kwargs))

        atomic.open = counting_open


if __name__ == "__main__":
    mode, n, separator, *cli = sys.argv[1:]
    assert separator == "--"
    arm(mode, int(n))
    from cli.main import main

    sys.exit(main(cli))

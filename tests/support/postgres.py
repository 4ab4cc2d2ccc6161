"""A throwaway PostgreSQL server for the catalog tests, from the server binaries alone.

`.ci/run` starts one with `python3 tests/support/postgres.py start DIR` and exports the URL it prints
as BLIP2_SEARCH_TEST_POSTGRES_URL; without that variable the tests start their own when
the binaries are installed (Debian's `postgresql`). It listens on a Unix socket in DIR only,
trusts local connections, and runs as the `postgres` user when started by root (initdb
refuses root). Standard library only: `.ci/run` calls it before the project is installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

PORT = 54329
ENV = "BLIP2_SEARCH_TEST_POSTGRES_URL"


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian keeps them off PATH, per version."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start(folder: Path, database: str = "blip2_search_test") -> str:
    """Start a server with its data and socket in `folder`; create `database`; its URL."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    folder = folder.resolve()
    data = folder / "data"
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    if not (data / "PG_VERSION").exists():
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                  "-E", "UTF8", "--no-instructions"]), check=True, capture_output=True)
    options = f"-k {folder} -p {PORT} -c listen_addresses='' -c fsync=off"
    subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                              "-l", str(folder / "server.log"), "start"]), check=True, capture_output=True)
    query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
    exists = subprocess.run([str(bindir / "psql"), "-h", str(folder), "-p", str(PORT), "-U", "postgres",
                             "-tAc", query], check=True, capture_output=True, text=True)
    if not exists.stdout.strip():
        subprocess.run([str(bindir / "createdb"), "-h", str(folder), "-p", str(PORT), "-U", "postgres",
                        database], check=True, capture_output=True)
    return url(folder, database)


def stop(folder: Path) -> None:
    bindir = binaries()
    if bindir is not None and (folder / "data" / "postmaster.pid").exists():
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate",
                                  "stop"]), capture_output=True)


def url(folder: Path, database: str) -> str:
    return f"postgresql+psycopg://postgres@/{database}?host={folder}&port={PORT}"


if __name__ == "__main__":
    action, where = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        print(start(where))
    else:
        stop(where)

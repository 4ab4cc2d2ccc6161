"""`blip2-search album create|list|show|edit|export|delete`: smart albums, saved queries whose
contents follow the index (search.query.albums)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from search.errors import InputError
from search.query.options import DATE_CANDIDATES

from .common import searcher
from .output import emit, hit_lines

SORTS = ("relevance", "newest", "oldest")


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    album = sub.add_parser("album", help="smart albums: saved queries that follow the index")
    actions = album.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=parents, help="save a query as an album")
    create.add_argument("name")
    create.add_argument("query", help="in the query language; filters alone keep what they let through")
    create.add_argument("--min-match", type=float, metavar="P",
                        help="the match probability an image needs (default 0.5 with a text term)")
    create.add_argument("--sort", choices=SORTS, default="relevance", help="how it is shown")
    create.add_argument("--where", action="append", default=[], metavar="QUESTION=ANSWER",
                        help="and the image's answer to QUESTION is ANSWER (repeatable)")
    create.add_argument("--candidates", type=int, default=DATE_CANDIDATES, metavar="N",
                        help=f"first-stage hits judged as it is created (default {DATE_CANDIDATES}); "
                             "every image indexed later is judged")
    actions.add_parser("list", parents=parents, help="the albums, with their counts and what is new")
    show = actions.add_parser("show", parents=parents, help="an album's images; marks them seen")
    show.add_argument("name")
    show.add_argument("-k", type=int, default=50, help="images shown (default 50)")
    show.add_argument("--offset", type=int, default=0)
    edit = actions.add_parser("edit", parents=parents, help="pin or exclude images by hand")
    edit.add_argument("name")
    for flag, what in (("pin", "keep ID in the album whatever its query says"),
                       ("unpin", "take a pin back"), ("exclude", "keep ID out of the album"),
                       ("include", "take an exclusion back")):
        edit.add_argument(f"--{flag}", action="append", type=int, default=[], metavar="ID", help=what)
    export = actions.add_parser("export", parents=parents,
                                help="the album's files: a JSON list, or a folder of links (--links)")
    export.add_argument("name")
    export.add_argument("--links", metavar="DIR", help="a folder of symbolic links to the files")
    delete = actions.add_parser("delete", parents=parents, help="delete an album (its images stay)")
    delete.add_argument("name")
    for parser in (create, show, edit, export, delete, actions.choices["list"]):
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.query.albums import AlbumSpec

    with searcher(args) as found:
        albums = found.albums
        if args.action == "create":
            spec = AlbumSpec(name=args.name, query=args.query, min_match=args.min_match, sort=args.sort,
                             where=tuple(args.where), candidates=args.candidates)
            album = albums.create(spec)
            emit(args, album, [f"album {album.name!r}: {album.count} items"])
        elif args.action == "list":
            listed = albums.all()
            from search.schemas import Albums

            emit(args, Albums(albums=listed), [_line(album) for album in listed] or ["no albums"])
        elif args.action == "show":
            album = albums.show(args.name, args.offset, args.k)
            emit(args, album, [_line(album)] + _marked(album))
        elif args.action == "edit":
            album = albums.place(args.name, pin=args.pin, unpin=args.unpin, exclude=args.exclude,
                                 include=args.include)
            emit(args, album, [_line(album)])
        elif args.action == "export":
            paths = albums.paths(args.name)
            if args.links:
                made = write_links(Path(args.links), paths)
                emit(args, {"name": args.name, "links": str(made), "count": len(paths)},
                     [f"{len(paths)} links in {made}"])
            else:
                emit(args, paths, [json.dumps(paths, ensure_ascii=False)])  # a JSON list either way
        else:
            albums.delete(args.name)
            emit(args, {"name": args.name, "deleted": True}, [f"album {args.name!r} deleted"])
    return 0


def _line(album) -> str:
    cutoff = f"match >= {album.min_match:g}" if album.min_match is not None else "filters only"
    new = f", {album.new} new" if album.new else ""
    return f"{album.name}: {album.count} items{new}  ({album.query!r}, {cutoff}, {album.sort})"


def _marked(album) -> list[str]:
    if not album.results:
        return ["no images"]
    new = set(album.new_ids)
    return [line + ("  (new)" if hit.id in new else "")
            for line, hit in zip(hit_lines(album.results), album.results, strict=True)]


def write_links(folder: Path, paths: list[str]) -> Path:
    """A folder of symbolic links to `paths`, named as the files (a name two files share takes
    a number). A folder that holds anything but links (an earlier export's) is refused:
    nothing in it is touched."""
    folder = folder.expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    others = [entry.name for entry in os.scandir(folder) if not entry.is_symlink()]
    if others:
        raise InputError(f"{folder} holds files that are not links ({others[0]}, ...): export into a new "
                         "or empty folder")
    for entry in os.scandir(folder):
        os.unlink(entry.path)
    taken: set[str] = set()
    for number, path in enumerate(paths, start=1):
        name = os.path.basename(path)
        if name in taken:
            name = f"{number}-{name}"
        taken.add(name)
        os.symlink(path, folder / name)
    return folder

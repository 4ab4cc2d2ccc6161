"""Indexing on a Ray cluster: the local indexer's plan and commit, with Ray Data in between.

    plan (here: scan.plan_roots; moved, touched and copied files need no model)
      ─ the files to embed, sorted, cut into shards named by their files
      ─ Ray Data: read, decode, embed, caption (raydata) ─ Parquet shards in <index>/ray-shards/
      ─ merge (here, no model call): one catalog transaction per shard, then the vector index

    summary = index_on_ray(collection, "blip2-opt-2.7b", [Path("photos")],
                           ray=RayOptions(address="ray://head:10001"))

A shard on disk is finished work: a run that failed or was killed is run again, and only the
shards still missing are computed. A merged shard is removed after its commit. One committed
but not yet removed (a kill in between) is not wanted by the next plan, whose files are then
unchanged, so it is removed unmerged; merging it again would only replace rows by path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.collection import Collection
from search.config import DEFAULT_PRECISION, Precision
from search.errors import SearchError
from search.media import ocr
from search.presets import resolve
from search.records import ImageFile
from search.schemas import IndexSummary, ShardCounts

from ..guard import guard, mark
from ..pipeline import IndexOptions, Progress, gain_readings
from ..plan import Plan
from ..scan import plan_roots
from ..steps import apply_plan, commit, finish, is_video

if TYPE_CHECKING:  # needs pyarrow, from the [distributed] extra
    from .shards import ShardFolder

SHARD_SIZE = 256  # files a shard: about 5 MB of Parquet at BLIP-2's 32 x 256 vectors
BATCH_SIZE = 16  # images a model call on a worker, unless IndexOptions.batch_size says
INSTALL_HINT = 'Ray is not installed: pip install "blip2-search[distributed]"'


class DistributedUnavailable(SearchError):
    """`--ray` without the [distributed] extra."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # a cluster (`ray://head:10001`, `auto`); None: start a local one
    shard_size: int = SHARD_SIZE
    actors: int | None = None  # model copies; None: one a GPU, else one a node
    device: str = "auto"
    precision: Precision = DEFAULT_PRECISION  # the workers' (`Blip2Engine.load`)
    filesystem: Any = None  # a pyarrow.fs.FileSystem the workers read the paths through


def index_on_ray(
    collection: Collection, model: str, roots: Iterable[Path], *, options: IndexOptions | None = None,
    ray: RayOptions | None = None, progress: Callable[[int], Progress] | None = None,
    notify: Callable[[str], None] | None = None,
) -> IndexSummary:
    """`index_paths` on Ray: the same catalog, vector index and summary (plus `shards`).
    `model` is a preset or a folder every node can reach; `options.workers` does not apply
    (the actors decode). `progress(total)` returns a per-file callback; `notify` hears whom
    it waits for, and gets one line on the shards found and to compute."""
    raydata, shards = _backend()
    options, ray = options or IndexOptions(), ray or RayOptions()
    if options.ocr:
        ocr.check()
    with collection.writing(wait=options.wait, waiting=notify):
        if options.index_type:
            collection.set_index_type(options.index_type)
        return _on_ray(collection, model, roots, options, ray, progress, notify, raydata, shards)


def _on_ray(collection, model, roots, options, ray, progress, notify, raydata, shards) -> IndexSummary:
    name = _model_name(collection, model)  # a preset, or a folder's absolute path: what the actors load
    plans = plan_roots(collection, roots, options.exclude)
    paused = guard(plans, options.max_removals)
    pending = _pending(plans)
    videos = [path for path in pending if is_video(path)]
    for path in videos:  # a shard row holds one picture's vectors, not a video's moments
        del pending[path]
    if notify and videos:
        notify(f"ray: {len(videos)} videos left for `index` without --ray, which indexes their moments")
    specs = shards.cut([(path, file.content_hash) for path, file in pending.items()], ray.shard_size,
                       salt=f"{name}\0captions={options.captions}\0ocr={options.ocr}")
    store = shards.ShardFolder(collection.folder / shards.FOLDER)
    store.keep_only({spec.name for spec in specs})
    todo = [spec for spec in specs if not store.done(spec.name)]
    reused = len(specs) - len(todo)
    summary = IndexSummary(shards=ShardCounts(total=len(specs), computed=len(todo), reused=reused),
                           paused=paused)
    if notify and specs:
        notify(f"ray: {len(specs)} shards of up to {ray.shard_size} files, {reused} finished by an "
               f"earlier run, {len(todo)} to compute")
    if todo:
        job = raydata.Job(model=name, device=ray.device, precision=ray.precision, captions=options.captions,
                          ocr=options.ocr, batch_size=options.batch_size or BATCH_SIZE, actors=ray.actors,
                          address=ray.address, filesystem=ray.filesystem)
        tick = progress(sum(len(spec.files) for spec in todo)) if progress else (lambda n: None)
        summary.model_calls = raydata.compute(todo, job, store.write, tick)
    merge(collection, plans, [spec.name for spec in specs], pending, store, summary)
    mark(plans, paused)
    summary.text += gain_readings(collection, options, options.batch_size or BATCH_SIZE, progress)
    return summary


def merge(collection: Collection, plans: list[Plan], names: list[str], pending: dict[str, ImageFile],
          store: ShardFolder, summary: IndexSummary) -> None:
    """Apply the plan's cheap changes, load the shards into the catalog (one transaction each,
    removing each shard after its commit), drop vanished files and save the vector index."""
    for root_plan in plans:
        apply_plan(collection, root_plan, summary)
        unreadable = [file for file in root_plan.embed if file.error is not None]  # never sent to Ray
        if unreadable:
            commit(collection, unreadable, summary)
    for name in names:
        made, model = store.read(name)
        if collection.model is None:  # a new index: the workers' model names its vectors
            collection.bind_model(model)
        commit(collection, [_outcome(pending[file.path], file) for file in made], summary)
        store.remove(name)
    finish(collection, plans, summary)


def _model_name(collection: Collection, model: str) -> str:
    """The name the index records for `model`; another model than the index's is refused."""
    name = resolve(model).name
    collection.check_model(name)
    return name


def _pending(plans: list[Plan]) -> dict[str, ImageFile]:
    """The files to embed, by path: those the plan could read (the others are failed rows)."""
    return {file.path: file for root_plan in plans for file in root_plan.embed if file.error is None}


def _outcome(planned: ImageFile, made: ImageFile) -> ImageFile:
    """The planned file (root, size, mtime) with what a worker made of it. The worker's hash
    is of the bytes it read: the vectors' own content, even if the file changed after the
    plan (the next run then finds it touched, or changed, as it is)."""
    return replace(planned, content_hash=made.content_hash or planned.content_hash, vectors=made.vectors,
                   caption=made.caption, text=made.text, picture_hash=made.picture_hash, width=made.width,
                   height=made.height, taken_at=made.taken_at,
                   thumbnail=made.thumbnail, error=made.error)


def _backend():
    """(raydata, shards): the modules that need the [distributed] extra (ray, pyarrow)."""
    try:
        from . import data as raydata
        from . import shards
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("ray", "pyarrow"):
            raise DistributedUnavailable(INSTALL_HINT) from None
        raise
    return raydata, shards

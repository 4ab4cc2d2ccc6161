"""The application on Ray Serve: `deploy` puts it on a cluster (or a local instance) and
returns when every replica is up; `serve --ray` then waits.

    shard-000 ... shard-{N-1}   R replicas each, one a node where the nodes allow
                                (`max_replicas_per_node=1`), the shard's files mapped from disk
    text, match, decoder        the model's parts, a GPU each where the cluster has one
    ingress                     the FastAPI app, on the HTTP port: the same API and web page
                                (these four on nodes with the `blip2-search-front` resource,
                                where some have it)

The shards are written first (`search.sharding.split`) when the index has none of that
count, or covers an older generation than its catalog.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ray
from ray import serve

from search.collection import Collection
from search.config import Settings
from search.errors import SearchError
from search.sharding import SHARDS, split
from search.store.shards import read_manifest

from .deployments import PARTS, Ingress, ModelPart, Shard
from .remote import SHARD_TIMEOUT_S

APP = "blip2-search"
SHARD_REQUESTS = 64  # requests a shard replica takes at once (Serve's default is 5)
INGRESS_REQUESTS = 256
SHARD_CPUS = 0.25  # memory-bound: a shard's scan is bandwidth, not cores
PART_CPUS = 0.5
FRONT = "blip2-search-front"  # a node resource: where a cluster has it, the ingress and model parts
# run on the nodes that do (the ones that should not be lost), the shards anywhere


def prepare_shards(settings: Settings, count: int) -> tuple[Path, str]:
    """The index's shards, written when missing, of another count, or behind the catalog;
    and the model to load."""
    root = Path(settings.index) / SHARDS
    collection = Collection.open(settings.index, url=settings.database_url)
    try:
        model = collection.model_to_load(settings.model)
        try:
            manifest = read_manifest(root)
            current = manifest.count == count and manifest.generation == collection.generation
        except SearchError:
            current = False
        if not current:
            split(collection, count, root)
        return root, model
    finally:
        collection.close()


def deploy(settings: Settings, *, shards: int, replicas: int, timeout_s: float = SHARD_TIMEOUT_S,
           start_delays: dict[int, float] | None = None) -> None:
    """Deploy the application on the Ray instance this process is connected to."""
    root, model = prepare_shards(settings, shards)
    nodes = len([node for node in ray.nodes() if node["Alive"]])
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0) > 0
    front = {"resources": {FRONT: 0.01}} if resources.get(FRONT) else {}
    spread = {"max_replicas_per_node": 1} if nodes >= replicas else {}
    shard_apps = [serve.deployment(Shard).options(
        name=f"shard-{n:03d}", num_replicas=replicas, max_ongoing_requests=SHARD_REQUESTS,
        ray_actor_options={"num_cpus": SHARD_CPUS}, health_check_period_s=2, **spread,
    ).bind(str(root), n, (start_delays or {}).get(n, 0.0)) for n in range(shards)]
    part_apps = {part: serve.deployment(ModelPart).options(
        name=part, ray_actor_options={"num_cpus": PART_CPUS, "num_gpus": 1 if gpus else 0, **front},
    ).bind(settings, model, part) for part in PARTS}
    ingress = serve.deployment(serve.ingress()(Ingress)).options(
        name="ingress", max_ongoing_requests=INGRESS_REQUESTS,
        ray_actor_options={"num_cpus": PART_CPUS, **front},
    ).bind(settings, str(root), shard_apps, part_apps, timeout_s)
    # one HTTP proxy, on the head node: the ingress is the one way in (a proxy on every node
    # would want a port of its own on a machine that runs several)
    serve.start(http_options={"host": settings.host, "port": settings.port}, proxy_location="HeadOnly")
    serve.run(ingress, name=APP, route_prefix="/")


def connect(address: str | None) -> None:
    """The cluster at `address` (`auto`: the one this machine belongs to), else a local one."""
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", include_dashboard=False, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SearchError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None

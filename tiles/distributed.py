"""Render a build's content tiles as dask.distributed tasks, one task per subtree of tiles.

``cim tiles build --dask tcp://scheduler:8786`` (or ``--workers N`` for a LocalCluster on this
machine) hands :func:`dask_renderer` to :func:`tiles.build.build_mesh_layer`. The driver builds
the feature index and the quadtree as usual; each task gets one subtree (tiles whose keys share
a prefix), opens its own database connection, fetches, meshes and encodes its tiles exactly as
the local build does and writes them into the build's staging folder, which must be storage all
workers share (the same machine, or a shared file system). The driver writes ``tileset.json``
and swaps the layer in, so the output is byte-identical to a local build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cim.errors import InvalidInput, TilingError
from tiles.content import encode_tile
from tiles.layers import MESH_LAYERS
from tiles.render import (
    BATCH_TRIANGLES,
    Progress,
    Renderer,
    RenderJob,
    TileOutput,
    batches,
    frame_of,
    mesh_node,
)
from tiles.subdivide import TileNode

TASKS_PER_WORKER = 4
"""Subtrees per worker: enough to balance uneven subtrees, few enough to keep overheads low."""


@dataclass
class TileWork:
    """One tile of a task: key, index ids of its features, box, leaf flag, triangle estimate."""

    key: str
    ids: npt.NDArray[np.int64]
    box: npt.NDArray[np.float64]
    leaf: bool
    triangles: int


def subtrees(nodes: list[TileNode], tasks: int) -> list[list[TileNode]]:
    """Split content tiles into about ``tasks`` groups, each a subtree (a shared key prefix).

    The prefix length grows until there are enough subtrees; tiles above that depth (the few
    coarse ones) form one more group.

    Examples
    --------
    >>> import numpy as np
    >>> def n(key): return TileNode(key, np.array([0]), np.zeros(6))
    >>> [[t.key for t in g] for g in subtrees([n("r"), n("r0"), n("r00"), n("r1")], 2)]
    [['r'], ['r0', 'r00'], ['r1']]
    """
    if not nodes:
        return []
    shortest = min(len(node.key) for node in nodes)
    longest = max(len(node.key) for node in nodes)
    depth = shortest
    while depth < longest and len({n.key[:depth] for n in nodes if len(n.key) >= depth}) < tasks:
        depth += 1
    groups: dict[str, list[TileNode]] = {}
    coarse: list[TileNode] = []
    for node in nodes:
        if len(node.key) < depth:
            coarse.append(node)
        else:
            groups.setdefault(node.key[:depth], []).append(node)
    return ([coarse] if coarse else []) + list(groups.values())


def render_subtree(
    conninfo: str,
    layer: str,
    spec: str,
    srid: int,
    folder: str,
    tiles: list[TileWork],
    compress: bool = False,
) -> list[TileOutput]:
    """A dask task: fetch, mesh, encode and write the tiles of one subtree; their figures."""
    import psycopg

    source = MESH_LAYERS[layer].source
    extension = "b3dm" if spec == "1.0" else "glb"
    content = Path(folder) / "content"
    outputs: list[TileOutput] = []
    with psycopg.connect(conninfo, application_name="cim-tiles-worker") as connection:
        for batch in batches(tiles, [t.triangles for t in tiles], BATCH_TRIANGLES):
            rows = source.fetch_rows(connection, np.concatenate([t.ids for t in batch]))
            for tile in batch:
                frame = frame_of(TileNode(tile.key, tile.ids, tile.box), srid)
                parts, table = mesh_node(source, rows, tile.ids, frame, leaf=tile.leaf)
                data = encode_tile(parts, table, spec=spec, compress=compress)
                (content / f"{tile.key}.{extension}").write_bytes(data)
                digest = hashlib.sha256(data).hexdigest()
                outputs.append(
                    TileOutput(tile.key, table.count, parts.triangle_count, len(data), digest)
                )
        connection.rollback()
    return outputs


def _prepare_worker() -> None:
    """Import the tiling stack once per worker when the cluster starts, not in the first task."""
    import psycopg  # noqa: F401

    import tiles.buildings
    import tiles.pipes  # noqa: F401


class DaskRenderer:
    """A :data:`tiles.render.Renderer` that runs :func:`render_subtree` on a dask cluster."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, job: RenderJob, progress: Progress | None) -> list[TileOutput]:
        from distributed import as_completed

        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        conninfo = job.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        index = job.index
        futures = []
        for group in subtrees(job.nodes, workers * TASKS_PER_WORKER):
            work = [
                TileWork(
                    node.key,
                    index.ids[node.rows],
                    node.box,
                    not node.children,
                    int(index.triangles[node.rows].sum()),
                )
                for node in group
            ]
            futures.append(
                self.client.submit(
                    render_subtree,
                    conninfo,
                    job.layer,
                    job.spec,
                    job.srid,
                    str(job.folder),
                    work,
                    job.compress,
                    pure=False,
                )
            )
        outputs: list[TileOutput] = []
        done, total = 0, len(index)
        try:
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                finished: list[TileOutput] = future.result()
                outputs.extend(finished)
                done += sum(o.features for o in finished)
                if progress is not None:
                    progress(done, total)
        except (OSError, ValueError):
            raise  # build_mesh_layer reports these as TilingError, as for a local build
        except Exception as exc:  # a lost worker, a cluster error: one clear line
            for future in futures:
                future.cancel()
            raise TilingError(f"a dask tile task failed: {type(exc).__name__}: {exc}") from exc
        return outputs


@contextmanager
def dask_renderer(scheduler: str | None = None, workers: int | None = None) -> Iterator[Renderer]:
    """A renderer on the scheduler at ``scheduler``, or on a LocalCluster of ``workers``
    single-threaded worker processes; the cluster is closed afterwards."""
    if (scheduler is None) == (workers is None):
        raise InvalidInput("give either a dask scheduler address or a number of workers")
    if workers is not None and workers < 1:
        raise InvalidInput("--workers must be at least 1")
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask[distributed] is a dependency
        raise TilingError(
            "dask.distributed is not installed: pip install dask[distributed]"
        ) from exc
    cluster = None
    try:
        if scheduler is not None:
            client = Client(scheduler, timeout="10s")  # type: ignore[no-untyped-call]
        else:
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,  # logging.ERROR: worker chatter would drown the progress bar
            )
            client = Client(cluster)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise TilingError(f"cannot reach the dask scheduler {scheduler}: {exc}") from exc
    try:
        client.run(_prepare_worker)
        yield DaskRenderer(client)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()

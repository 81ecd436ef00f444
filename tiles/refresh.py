"""The ``tiles`` task of the job queue: rebuild the tile layers a dataset kind feeds.

After an import through ``POST /datasets`` a worker runs this refresh (see :mod:`cim.jobs`). It
calls the same layer builds as ``cim tiles build`` (:func:`tiles.build.build_mesh_layer`,
:func:`tiles.terrain.build_terrain`, :func:`tiles.pointcloud.build_pointcloud_layer`), each of
which skips a layer whose datasets are unchanged, and keeps how a layer was last built (3D Tiles
version, compression, IFC spaces) so a refresh never changes the format an admin chose. One
refresh runs at a time in the whole deployment (a PostgreSQL advisory lock), so two workers never
build the same layer into the same folder at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from cim.jobs.queue import Claim
from cim.jobs.worker import JobOutcome, Progress
from tiles import buildings, pipes, pointcloud
from tiles.layers import DEFAULT_SENSITIVE
from tiles.record import recorded

REFRESH_LOCK = 0x63696D_74696C65
"""Key of the advisory lock one refresh holds while it builds ("cim" "tile")."""
TERRAIN_KINDS = ("terrain",)


def layers_of_kind(kind: str) -> list[str]:
    """The layers built from datasets of ``kind`` (none for roads, shelters, ...).

    Examples
    --------
    >>> layers_of_kind("pipes")
    ['pipes', 'pipes_restricted']
    >>> layers_of_kind("roads")
    []
    """
    sources: list[tuple[tuple[str, ...], list[str]]] = [
        (buildings.DATASET_KINDS, ["buildings"]),
        (pipes.DATASET_KINDS, ["pipes", "pipes_restricted"]),
        (pointcloud.DATASET_KINDS, ["pointcloud"]),
        (TERRAIN_KINDS, ["terrain"]),
    ]
    return [layer for kinds, layers in sources if kind in kinds for layer in layers]


def build_layer(
    engine: Engine,
    tiles_dir: Path,
    layer: str,
    *,
    sensitive: frozenset[str] = DEFAULT_SENSITIVE,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Build one layer as its last build was made (spec, compression, spaces); its summary."""
    if layer == "terrain":
        from tiles.terrain import build_terrain

        summary = dict(build_terrain(engine, tiles_dir / "terrain", progress=progress))
        summary.setdefault("layer", "terrain")
        return summary
    if layer == "pointcloud":
        return pointcloud.build_pointcloud_layer(engine, tiles_dir, progress=progress).to_dict()
    from tiles.build import build_mesh_layer  # numpy/shapely stacks only when building

    spec, options = recorded(engine, layer) or ("1.1", {})
    return build_mesh_layer(
        engine,
        tiles_dir,
        layer,
        spec=spec,
        progress=progress,
        sensitive=sensitive,
        include_spaces=options.get("include_spaces") == "yes",
        compress=options.get("compression") == "meshopt",
    ).to_dict()


class TilesTask:
    """The ``tiles`` handler: refreshes the layers of the job's dataset kind into ``tiles_dir``
    (the worker's ``CIM_DATA_DIR/tiles``), restricted classes as ``CIM_SENSITIVE_UTILITIES``."""

    def __init__(self, tiles_dir: Path, sensitive: frozenset[str] = DEFAULT_SENSITIVE) -> None:
        self.tiles_dir = Path(tiles_dir)
        self.sensitive = sensitive

    def accepts(self, kind: str) -> bool:
        return bool(layers_of_kind(kind))

    def run(self, engine: Engine, job: Claim, progress: Progress) -> JobOutcome:
        """Build every layer of ``job.kind`` (or the job's ``layers`` option) in turn."""
        layers = [str(name) for name in job.options.get("layers", [])] or layers_of_kind(job.kind)
        results = []
        with engine.connect() as lock:  # held until this connection closes (or its process dies)
            lock.execute(select(func.pg_advisory_lock(REFRESH_LOCK)))
            lock.commit()  # a session lock: kept while the connection waits idle, not in a txn
            try:
                for number, layer in enumerate(layers):

                    def report(done: int, total: int, number: int = number) -> None:
                        part = done / total if total else 0.0
                        progress((number + part) / len(layers), f"tiles {layers[number]}")

                    results.append(
                        build_layer(
                            engine, self.tiles_dir, layer, sensitive=self.sensitive, progress=report
                        )
                    )
            finally:
                lock.execute(select(func.pg_advisory_unlock(REFRESH_LOCK)))
                lock.commit()
        return JobOutcome({"layers": results}, job.dataset_id)

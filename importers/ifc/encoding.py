"""Element rows encoded while the kernel still runs: each finished chunk goes to the workers.

Why: a worker that finishes its last kernel chunk would otherwise idle while the other ends a
heavy one, and every footprint (GEOS) waited for the last triangle. A chunk's meshes are final
once its pieces are in, so they move to storage coordinates and are queued for encoding at
once. If that move fails (a model placed outside the storage CRS's area) the encoder stops
quietly: the importer's extent check then reports the placement first, as it always did, and
converts the rest itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, as_completed
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import numpy.typing as npt

from cim.crs import to_storage
from cim.errors import CimError, ImportFailed
from importers.ifc.geometry import ElementMesh
from importers.ifc.georef import Placement, horizontal_crs
from importers.ifc.workers import (
    ROWS_PER_TASK,
    ElementValues,
    EncodedBatch,
    MeshInput,
    Workers,
)


class EarlyEncoder:
    """Collects each mesh's world extent; on workers, converts and queues meshes as they come."""

    def __init__(
        self,
        workers: Workers,
        placement: Placement,
        srid: int,
        outline_group: Callable[[int], int | None],
    ) -> None:
        self.workers = workers
        self.outline_group = outline_group
        """Product STEP id -> the building whose outline its footprint joins (or None)."""
        self.outlines: dict[int, list[bytes]] = {}
        """Building -> partial outlines (WKB), complete once :meth:`completed` is consumed."""
        self.placement = placement
        self.srid = srid
        self.extent: list[npt.NDArray[np.float64]] = []
        """Per mesh, its world-metre low and high corner (what the extent check needs)."""
        self.converted: set[int] = set()
        """Products whose vertices are already in storage coordinates."""
        self._stopped = not workers.parallel
        self._queued: dict[int, tuple[Future[EncodedBatch], int]] = {}

    def add(self, meshes: list[ElementMesh]) -> None:
        """``element_meshes``' ``on_meshes`` hook."""
        for mesh in meshes:
            if len(mesh.vertices):
                self.extent.append(
                    np.vstack([mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)])
                )
        if self._stopped:
            return
        try:
            move_to_storage(meshes, self.placement, self.srid)
        except CimError:
            self._stopped = True
            return
        self.converted.update(m.product_id for m in meshes)
        # In tasks of at most ROWS_PER_TASK meshes: a big chunk as one task left one worker
        # encoding long after the other had finished (Office_A: 0.54 s against 0.37 s).
        for start in range(0, len(meshes), ROWS_PER_TASK):
            part = meshes[start : start + ROWS_PER_TASK]
            future = self.workers.submit_encode(self._inputs(part), self.srid)
            for index, mesh in enumerate(part):
                self._queued[mesh.product_id] = (future, index)

    def completed(self, meshes: list[ElementMesh]) -> Iterator[tuple[int, ElementValues]]:
        """(position in ``meshes``, encoded columns) of every mesh, each batch as soon as it
        is ready (the rest queued now), so rows can be written while workers still encode."""
        waiting: dict[Future[EncodedBatch], list[tuple[int, int]]] = {}
        rest: list[int] = []
        for position, mesh in enumerate(meshes):
            queued = self._queued.get(mesh.product_id)
            if queued is None:
                rest.append(position)
            else:
                waiting.setdefault(queued[0], []).append((position, queued[1]))
        inputs = self._inputs([meshes[p] for p in rest])
        if self.workers.parallel:
            for start in range(0, len(rest), ROWS_PER_TASK):
                end = start + ROWS_PER_TASK
                future = self.workers.submit_encode(inputs[start:end], self.srid)
                waiting[future] = [(p, index) for index, p in enumerate(rest[start:end])]
        else:
            yield from zip(rest, self._flatten(self.workers.encode(inputs, self.srid)), strict=True)
        try:
            for future in as_completed(waiting):
                batch = future.result()
                self._keep_outlines(batch)
                for position, index in waiting[future]:
                    yield position, batch.values[index]
        except BrokenProcessPool:
            raise ImportFailed("a geometry worker process died while encoding rows") from None

    def _flatten(self, batches: Iterator[EncodedBatch]) -> Iterator[ElementValues]:
        for batch in batches:
            self._keep_outlines(batch)
            yield from batch.values

    def _keep_outlines(self, batch: EncodedBatch) -> None:
        for group, outline in batch.outlines.items():
            self.outlines.setdefault(group, []).append(outline)

    def _inputs(self, meshes: list[ElementMesh]) -> list[MeshInput]:
        return [(m.vertices, m.faces, self.outline_group(m.product_id)) for m in meshes]


def move_to_storage(meshes: list[ElementMesh], placement: Placement, srid: int) -> None:
    """Replace each mesh's world-metre vertices by storage coordinates (one pyproj call)."""
    if not meshes:
        return
    sizes = [len(m.vertices) for m in meshes]
    placed = placement.apply(np.vstack([m.vertices for m in meshes]))
    source = horizontal_crs(placement.crs)
    if source.to_epsg() == srid:
        x, y = placed[:, 0], placed[:, 1]
    else:
        x, y, _ = to_storage(source, srid, placed[:, 0], placed[:, 1])
    stored = np.column_stack([x, y, placed[:, 2]])
    for mesh, part in zip(meshes, np.split(stored, np.cumsum(sizes)[:-1]), strict=True):
        mesh.vertices = part

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
from concurrent.futures import Future

import numpy as np
import numpy.typing as npt

from cim.crs import to_storage
from cim.errors import CimError
from importers.ifc.geometry import ElementMesh
from importers.ifc.georef import Placement, horizontal_crs
from importers.ifc.workers import ElementValues, EncodedBatch, MeshInput, Workers


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
        """Building -> partial outlines (WKB), complete once :meth:`values` is consumed."""
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
        future = self.workers.submit_encode(self._inputs(meshes), self.srid)
        for index, mesh in enumerate(meshes):
            self._queued[mesh.product_id] = (future, index)

    def values(self, meshes: list[ElementMesh]) -> Iterator[ElementValues]:
        """Each mesh's encoded columns, in the order of ``meshes`` (the rest encoded now)."""
        rest = [m for m in meshes if m.product_id not in self._queued]
        encoded = self._flatten(self.workers.encode(self._inputs(rest), self.srid))
        seen: set[int] = set()
        for mesh in meshes:
            queued = self._queued.get(mesh.product_id)
            if queued is None:
                yield next(encoded)
                continue
            future, index = queued
            batch = future.result()
            if id(future) not in seen:
                seen.add(id(future))
                self._keep_outlines(batch)
            yield batch.values[index]

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

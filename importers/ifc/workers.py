"""Kernel work on every core: forked processes that triangulate and encode element rows.

Why processes: ifcopenshell's threaded iterator was slower with two threads than with one on
the 2-core bench machine, and the Python work per element (plan footprints with GEOS, EWKB)
holds the GIL. Children forked after the file is parsed inherit it (no re-parse, nothing of
it pickled) and send back plain bytes. A child that dies (a kernel crash) fails the import
instead of hanging it; children die with their parent (``PR_SET_PDEATHSIG``), so a killed
import leaves no kernel running. One worker means no processes at all.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import shapely

from cim.errors import ImportFailed
from cim.processes import die_with_parent
from importers.ifc.geometry import KernelTask, Piece, triangulate
from importers.ifc.rows import FootprintCache, box3d, ewkb, mesh_ewkb

CHUNKS_PER_WORKER = 6
"""Kernel tasks per worker: enough to even out heavy and light chunks, few iterator set-ups."""
ROWS_PER_TASK = 64
OUTLINE_GRID = 1e-3
"""Building outlines are unioned on a 1 mm grid (exact overlay of thousands of touching
footprints fails on nearly coincident edges)."""

_inherited_file: Any = None
_footprints = FootprintCache()
"""Per process (each worker its own): outlines of repeated shapes computed once."""


class ElementValues(NamedTuple):
    """An element's encoded geometry columns."""

    mesh: str
    """Hex EWKB MULTIPOLYGON Z."""
    footprint: str | None
    """Hex EWKB MULTIPOLYGON of the plan outline (None without plan area)."""
    bbox3d: str | None


MeshInput = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], int | None]
"""Storage-coordinate vertices, faces, and the outline group (building) the footprint joins."""


class EncodedBatch(NamedTuple):
    """Encoded rows of a batch and, per outline group, the union of their footprints."""

    values: list[ElementValues]
    outlines: dict[int, bytes]
    """Group -> WKB of the union (snapped to :data:`OUTLINE_GRID`) of its footprints here."""


def encode_batch(batch: Sequence[MeshInput], srid: int) -> EncodedBatch:
    """:func:`encode_element` of each mesh, plus each group's partial outline.

    The building outline is the union of its elements' footprints; unioning each batch's part
    where the footprints are made spreads that GEOS work over the workers, and the writer only
    unions the few partial outlines.
    """
    values = []
    parts: dict[int, list[Any]] = {}
    for vertices, faces, group in batch:
        outline = _footprints(vertices, faces)
        values.append(
            ElementValues(
                mesh=mesh_ewkb(vertices, faces, srid),
                footprint=ewkb(outline, srid),
                bbox3d=box3d(vertices),
            )
        )
        if group is not None and outline is not None:
            parts.setdefault(group, []).append(outline)
    outlines = {
        group: bytes(shapely.to_wkb(shapely.union_all(shapes, grid_size=OUTLINE_GRID)))
        for group, shapes in parts.items()
    }
    return EncodedBatch(values, outlines)


def chunk_by_cost(
    product_ids: Sequence[int], costs: dict[int, int], parts: int, shared: set[int]
) -> list[KernelTask]:
    """About ``parts`` tasks of similar total cost, the costliest first (``shared``: the ids
    whose bodies have copies, triangulated in object coordinates).

    Handed out in this order, the long boolean-heavy chunks start at once and the cheap ones
    fill the gaps at the end (longest processing time first).
    """
    ordered = sorted(product_ids, key=lambda i: -costs.get(i, 1))
    total = sum(costs.get(i, 1) for i in ordered)
    target = max(1.0, total / max(1, parts))
    chunks: list[KernelTask] = []
    current = KernelTask([], [])
    weight = 0
    for product_id in ordered:
        (current.shared if product_id in shared else current.alone).append(product_id)
        weight += costs.get(product_id, 1)
        if weight >= target:
            chunks.append(current)
            current, weight = KernelTask([], []), 0
    if current.shared or current.alone:
        chunks.append(current)
    return chunks


class Workers:
    """``count`` forked children sharing the parsed ``ifc`` (or the calling process for one)."""

    def __init__(self, ifc: Any, count: int) -> None:
        self.ifc = ifc
        self.count = max(1, count)
        self._pool: ProcessPoolExecutor | None = None
        if self.count > 1 and "fork" in multiprocessing.get_all_start_methods():
            self._pool = ProcessPoolExecutor(
                self.count,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_child,
                initargs=(ifc, os.getpid()),
            )

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def parallel(self) -> bool:
        """True when the work goes to child processes."""
        return self._pool is not None

    def submit_encode(self, meshes: Sequence[MeshInput], srid: int) -> Future[EncodedBatch]:
        """Queue :func:`encode_batch` of ``meshes`` behind the work already queued."""
        assert self._pool is not None
        try:
            return self._pool.submit(encode_batch, meshes, srid)
        except BrokenProcessPool:
            raise ImportFailed("a geometry worker process died while encoding rows") from None

    def triangulate(self, chunks: list[KernelTask]) -> TriangulationRun:
        """Start triangulating ``chunks``; collect with :meth:`TriangulationRun.results`."""
        return TriangulationRun(self, chunks)

    def encode(self, meshes: Sequence[MeshInput], srid: int) -> Iterator[EncodedBatch]:
        """:func:`encode_batch` of ``meshes`` in consecutive batches, in order."""
        batches = [meshes[i : i + ROWS_PER_TASK] for i in range(0, len(meshes), ROWS_PER_TASK)]
        if self._pool is None:
            for batch in batches:
                yield encode_batch(batch, srid)
            return
        try:
            yield from self._pool.map(partial(encode_batch, srid=srid), batches)
        except BrokenProcessPool:
            raise ImportFailed("a geometry worker process died while encoding rows") from None


class TriangulationRun:
    """Chunks in flight; the caller may do other work before asking for the results."""

    def __init__(self, workers: Workers, chunks: list[KernelTask]) -> None:
        self.workers = workers
        self.chunks: list[KernelTask] = []
        self._pending: set[Future[list[Piece]]] = set()
        self._unstarted: list[KernelTask] = []
        """Without processes: chunks not triangulated yet (run by :meth:`results`)."""
        self.add(chunks)

    def add(self, chunks: list[KernelTask]) -> None:
        """Queue more chunks behind those already queued."""
        self.chunks += chunks
        pool = self.workers._pool
        if pool is None:
            self._unstarted += chunks
            return
        try:
            self._pending.update(pool.submit(_triangulate_in_child, chunk) for chunk in chunks)
        except BrokenProcessPool:
            raise ImportFailed("a geometry worker process could not start") from None

    def ready(self) -> Iterator[list[Piece]]:
        """The pieces of the chunks finished by now, without waiting (none without processes).

        Lets the caller queue a finished chunk's follow-up work (encoding) between its own
        steps, so a worker done with its kernel chunks does not sit idle meanwhile.
        """
        yield from self._collect(block=False)

    def results(self) -> Iterator[list[Piece]]:
        """Each remaining chunk's pieces as it completes (in order when there are no processes)."""
        while self._unstarted:
            yield triangulate(self.workers.ifc, self._unstarted.pop(0))
        yield from self._collect(block=True)

    def _collect(self, *, block: bool) -> Iterator[list[Piece]]:
        try:
            while self._pending:
                done, _ = wait(
                    self._pending, timeout=None if block else 0, return_when=FIRST_COMPLETED
                )
                if not done:
                    return
                for future in done:
                    self._pending.discard(future)
                    yield future.result()
        except BrokenProcessPool:
            raise ImportFailed(
                "the geometry kernel crashed in a worker process; nothing was imported"
            ) from None


def _start_child(ifc: Any, parent: int) -> None:
    global _inherited_file
    _inherited_file = ifc
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    if not die_with_parent(signal.SIGKILL, parent):  # the parent died before it was armed
        os._exit(1)


def _triangulate_in_child(task: KernelTask) -> list[Piece]:
    return triangulate(_inherited_file, task)

"""Every product's mesh: plan the distinct bodies, triangulate them on the workers, place all.

Runs the product facts (property sets, materials, parents) in this process while the workers
triangulate, so the two overlap on separate cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from importers.ifc.geometry import Assembly, ElementMesh, Piece, kernel_products
from importers.ifc.reuse import plan_shapes
from importers.ifc.workers import CHUNKS_PER_WORKER, Workers, chunk_by_cost


def element_meshes(
    ifc: Any,
    workers: Workers,
    *,
    on_product: Callable[[int], None] | None = None,
    on_meshes: Callable[[list[ElementMesh]], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[int, ElementMesh]:
    """Every product the iterator can triangulate, in world metres, keyed by STEP id.

    ``on_product(step_id)`` runs once per product planned for triangulation while the workers
    triangulate; ``on_meshes(meshes)`` with each finished chunk's meshes (final: a product's
    pieces all come from one task); ``progress(percent)`` after each finished chunk.
    """
    import ifcopenshell.util.unit

    plan = plan_shapes(kernel_products(ifc), ifcopenshell.util.unit.calculate_unit_scale(ifc))
    chunks = chunk_by_cost(
        [p.id() for p in plan.representatives],
        plan.costs,
        workers.count * CHUNKS_PER_WORKER,
        shared=set(plan.copies),
    )
    run = workers.triangulate(chunks)
    if on_product is not None:
        for product_id in plan.products():
            on_product(product_id)
    assembly = Assembly(ifc, plan)
    for done, pieces in enumerate(run.results(), start=1):
        _add(assembly, pieces, on_meshes)
        if progress is not None:
            progress(int(100 * done / max(1, len(chunks))))
    alone = assembly.redo()
    if alone:
        for pieces in workers.triangulate(chunk_by_cost(alone, {}, workers.count, set())).results():
            _add(assembly, pieces, on_meshes)
    return assembly.finish()


def _add(
    assembly: Assembly,
    pieces: list[Piece],
    on_meshes: Callable[[list[ElementMesh]], None] | None,
) -> None:
    touched: dict[int, None] = {}
    for piece in pieces:
        touched.update(dict.fromkeys(assembly.add(piece)))
    if on_meshes is not None and touched:
        on_meshes([assembly.meshes[product_id] for product_id in touched])

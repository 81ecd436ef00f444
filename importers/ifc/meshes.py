"""Every product's mesh: plan the distinct bodies, triangulate them on the workers, place all.

Runs the product facts (property sets, materials, parents) in this process while the workers
triangulate, so the two overlap on separate cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from importers.ifc.geometry import Assembly, ElementMesh, kernel_products
from importers.ifc.reuse import plan_shapes
from importers.ifc.workers import CHUNKS_PER_WORKER, Workers, chunk_by_cost


def element_meshes(
    ifc: Any,
    workers: Workers,
    *,
    on_product: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[int, ElementMesh]:
    """Every product the iterator can triangulate, in world metres, keyed by STEP id.

    ``on_product(step_id)`` runs once per product planned for triangulation while the workers
    triangulate; ``progress(percent)`` after each finished chunk.
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
        for piece in pieces:
            assembly.add(piece)
        if progress is not None:
            progress(int(100 * done / max(1, len(chunks))))
    alone = assembly.redo()
    if alone:
        for pieces in workers.triangulate(chunk_by_cost(alone, {}, workers.count, set())).results():
            for piece in pieces:
                assembly.add(piece)
    return assembly.finish()

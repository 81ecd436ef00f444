"""Every product's mesh: plan the distinct bodies, triangulate them on the workers, place all.

Runs the product facts (property sets, materials, parents) in this process while the workers
triangulate, so the two overlap on separate cores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from importers.ifc.geometry import Assembly, ElementMesh, Piece, kernel_products
from importers.ifc.reuse import kernel_cost, plan_shapes, voided
from importers.ifc.workers import CHUNKS_PER_WORKER, TriangulationRun, Workers, chunk_by_cost

FACTS_BETWEEN_CHECKS = 32
"""Products whose facts are read between two looks for finished kernel chunks."""


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

    products = kernel_products(ifc)
    run, early = _start_voided(products, workers)
    plan = plan_shapes(products, ifcopenshell.util.unit.calculate_unit_scale(ifc))
    run.add(
        chunk_by_cost(
            [p.id() for p in plan.representatives if p.id() not in early],
            plan.costs,
            max(workers.count, workers.count * CHUNKS_PER_WORKER - len(run.chunks)),
            shared=set(plan.copies),
        )
    )
    assembly = Assembly(ifc, plan)
    done = 0

    def collect(pieces: list[Piece]) -> None:
        nonlocal done
        _add(assembly, pieces, on_meshes)
        done += 1
        if progress is not None:
            progress(int(100 * done / max(1, len(run.chunks))))

    if on_product is not None:
        for index, product_id in enumerate(plan.products(), start=1):
            on_product(product_id)
            if index % FACTS_BETWEEN_CHECKS == 0:
                for pieces in run.ready():
                    collect(pieces)
    for pieces in run.results():
        collect(pieces)
    alone = assembly.redo()
    if alone:
        for pieces in workers.triangulate(chunk_by_cost(alone, {}, workers.count, set())).results():
            _add(assembly, pieces, on_meshes)
    return assembly.finish()


def _start_voided(products: list[Any], workers: Workers) -> tuple[TriangulationRun, set[int]]:
    """Products with openings or projections on the workers at once, and their ids.

    They are planned alone whatever the plan finds and are the costliest (booleans), so the
    kernel starts on them while this process plans the rest (Office_A: 63 walls, about 0.15 s
    of planning the workers no longer wait for). Their share of the chunks follows their share
    of the cost, the rest counted at the least it can cost.
    """
    alone = [p for p in products if voided(p)]
    costs = {p.id(): kernel_cost(p) for p in alone}
    share = sum(costs.values()) / max(1, sum(costs.values()) + len(products) - len(alone))
    parts = round(workers.count * CHUNKS_PER_WORKER * share)
    chunks = chunk_by_cost(list(costs), costs, parts, shared=set()) if alone else []
    return workers.triangulate(chunks), set(costs)


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

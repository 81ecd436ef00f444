"""Triangulated element meshes from ``ifcopenshell.geom.iterator``, placed in world metres.

The iterator is IfcOpenShell's documented fast path (one C++ pass over many products);
calling ``create_shape`` per element is several times slower. It runs here in object
coordinates over the representatives of a :class:`~importers.ifc.reuse.ShapePlan`, and
:class:`Assembly` applies each product's matrix, so a body shared by many products is
triangulated once. It yields one shape per product *and representation item group*, so a
product can come more than once (CityGML conversions do this); the pieces are merged here.
Coordinates are world coordinates in metres (the iterator converts project units), before any
map conversion.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from importers.ifc.reuse import ShapePlan

GEOMETRY_LIBRARY: Final[Literal["hybrid-cgal-simple-opencascade"]] = (
    "hybrid-cgal-simple-opencascade"
)
"""CGAL for simple extrusions and breps, Open CASCADE for the rest: about 2x faster than
Open CASCADE alone on the sample files, same element set."""

EXCLUDED_CLASSES = ("IfcOpeningElement",)
"""Openings are voids, not things; spaces are kept (stored with ``is_space``)."""

BODY_IDENTIFIERS = {"Body", "Facetation", "Body-FallBack", "Brep", "Mesh"}

NON_BODY_TYPES = {"Curve", "Curve2D", "Curve3D", "Point", "PointCloud", "GeometricCurveSet"}
"""Representation types that hold no surfaces, so the iterator rightly yields no mesh."""


@dataclass
class ElementMesh:
    """One product's triangles in world metres, with the colour of its dominant surface style."""

    product_id: int
    guid: str
    ifc_class: str
    vertices: npt.NDArray[np.float64]
    faces: npt.NDArray[np.int64]
    color: list[float] | None = None
    style_faces: dict[tuple[float, ...], int] = field(default_factory=dict)


class KernelTask(NamedTuple):
    """Products for one iterator run: bodies shared with copies, and products alone."""

    shared: list[int]
    alone: list[int]


IDENTITY: Final = tuple(float(v) for v in np.identity(4).ravel())


class Piece(NamedTuple):
    """One shape the iterator yielded, as plain bytes (cheap to send between processes)."""

    product_id: int
    matrix: tuple[float, ...]
    """Object-to-world, 16 values column-major, translation in metres."""
    vertices: bytes
    faces: bytes
    material_ids: bytes
    colors: list[tuple[float, ...] | None]


def geometry_settings(*, world_coords: bool = True) -> Any:
    """Iterator settings: metres, surface-style colours only; world or object coordinates."""
    import ifcopenshell.geom

    settings = ifcopenshell.geom.settings()  # type: ignore[no-untyped-call]
    settings.set("use-world-coords", world_coords)
    settings.set("apply-default-materials", False)
    return settings


def default_threads() -> int:
    """One kernel worker per core the process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _rgba(material: Any) -> tuple[float, ...] | None:
    diffuse = material.diffuse
    if diffuse is None:
        return None
    transparency = material.transparency
    alpha = 1.0 if transparency is None or math.isnan(transparency) else 1.0 - transparency
    values = (diffuse.r(), diffuse.g(), diffuse.b(), alpha)
    if any(math.isnan(v) for v in values):
        return None
    return tuple(round(min(max(v, 0.0), 1.0), 4) for v in values)


def triangulate(ifc: Any, task: KernelTask) -> list[Piece]:
    """The iterator's pieces for a task's products, one kernel thread.

    Shared bodies are triangulated in object coordinates (placed per product afterwards), the
    others in world coordinates: openings are subtracted there as they always were (in object
    coordinates the iterator lost a sink's counter top in Office_A).

    One thread because ifcopenshell's threaded iterator ran slower with two threads than with
    one on the 2-core bench machine (ISSUE_021: 19 s wall and 12 s CPU against 8 s and 5.7 s);
    parallelism comes from processes (:mod:`importers.ifc.workers`).
    """
    return _run_iterator(ifc, task.shared, world_coords=False) + _run_iterator(
        ifc, task.alone, world_coords=True
    )


def _run_iterator(ifc: Any, product_ids: list[int], *, world_coords: bool) -> list[Piece]:
    """Pieces of ``product_ids``; one run, then each product it left out on its own.

    The single-threaded iterator stops at the first product that raises (House_Renga: a door
    with a derived ``Name``) and reports itself exhausted, so what it left out is tried alone:
    the same products come out as from the threaded iterator over the whole file.
    """
    pieces = _iterate(ifc, product_ids, world_coords=world_coords)
    if len(product_ids) > 1:
        yielded = {piece.product_id for piece in pieces}
        for product_id in product_ids:
            if product_id not in yielded:
                pieces += _iterate(ifc, [product_id], world_coords=world_coords)
    return pieces


def _iterate(ifc: Any, product_ids: list[int], *, world_coords: bool) -> list[Piece]:
    import ifcopenshell.geom

    if not product_ids:
        return []
    iterator = ifcopenshell.geom.iterator(
        geometry_settings(world_coords=world_coords),
        ifc,
        1,
        include=[ifc.by_id(i) for i in product_ids],
        geometry_library=GEOMETRY_LIBRARY,
    )
    pieces: list[Piece] = []
    if not iterator.initialize():
        return pieces
    while True:
        shape = iterator.get()  # type: ignore[no-untyped-call]
        geometry = shape.geometry
        pieces.append(
            Piece(
                product_id=shape.id,
                matrix=IDENTITY if world_coords else tuple(shape.transformation.matrix),
                vertices=bytes(geometry.verts_buffer),
                faces=bytes(geometry.faces_buffer),
                material_ids=bytes(geometry.material_ids_buffer),
                colors=[_rgba(m) for m in geometry.materials],
            )
        )
        if not iterator.next():
            break
    return pieces


class Assembly:
    """Pieces -> one world-metre mesh per product, copies placed by the plan's matrices."""

    def __init__(self, ifc: Any, plan: ShapePlan) -> None:
        self.ifc = ifc
        self.plan = plan
        self.meshes: dict[int, ElementMesh] = {}
        self.misplaced: list[int] = []
        """Representatives whose iterator matrix disagrees with the plan's (copies redone)."""

    def add(self, piece: Piece) -> list[int]:
        """Place ``piece`` on its product and the copies; the product ids it touched."""
        local = np.frombuffer(piece.vertices, dtype=np.float64).reshape(-1, 3)
        faces = np.frombuffer(piece.faces, dtype=np.int32).reshape(-1, 3).astype(np.int64)
        style_faces = _style_faces(piece)
        matrix = np.asarray(piece.matrix, dtype=np.float64).reshape(4, 4).T  # column-major
        self._place(piece.product_id, local, matrix, faces, style_faces)
        copies = self.plan.copies.get(piece.product_id, ())
        if not copies:
            return [piece.product_id]
        expected = self.plan.matrices.get(piece.product_id)
        if expected is None or not np.allclose(expected, matrix, rtol=1e-9, atol=1e-6):
            if piece.product_id not in self.misplaced:
                self.misplaced.append(piece.product_id)
            return [piece.product_id]
        for copy_id in copies:
            self._place(copy_id, local, self.plan.matrices[copy_id], faces, style_faces)
        return [piece.product_id, *copies]

    def redo(self) -> list[int]:
        """Copies of misplaced representatives, to triangulate one by one; forgets them."""
        ids = [c for r in self.misplaced for c in self.plan.copies.pop(r, ())]
        self.misplaced = []
        return ids

    def finish(self) -> dict[int, ElementMesh]:
        """The meshes in STEP id order, each coloured by its dominant surface style."""
        for mesh in self.meshes.values():
            if mesh.style_faces:
                mesh.color = list(max(mesh.style_faces.items(), key=lambda item: item[1])[0])
        return dict(sorted(self.meshes.items()))

    def _place(
        self,
        product_id: int,
        local: npt.NDArray[np.float64],
        matrix: npt.NDArray[np.float64],
        faces: npt.NDArray[np.int64],
        style_faces: dict[tuple[float, ...], int],
    ) -> None:
        vertices = local @ matrix[:3, :3].T + matrix[:3, 3]
        mesh = self.meshes.get(product_id)
        if mesh is None:
            product = self.ifc.by_id(product_id)
            self.meshes[product_id] = ElementMesh(
                product_id=product_id,
                guid=product.GlobalId,
                ifc_class=product.is_a(),
                vertices=vertices,
                faces=faces,
                style_faces=dict(style_faces),
            )
            return
        offset = len(mesh.vertices)
        mesh.vertices = np.vstack([mesh.vertices, vertices])
        mesh.faces = np.vstack([mesh.faces, faces + offset])
        for rgba, count in style_faces.items():
            mesh.style_faces[rgba] = mesh.style_faces.get(rgba, 0) + count


def _style_faces(piece: Piece) -> dict[tuple[float, ...], int]:
    material_ids = np.frombuffer(piece.material_ids, dtype=np.int32)
    counts: dict[tuple[float, ...], int] = {}
    if not len(material_ids) or not piece.colors:
        return counts
    ids, sizes = np.unique(material_ids, return_counts=True)
    for material_id, size in zip(ids.tolist(), sizes.tolist(), strict=True):
        if 0 <= material_id < len(piece.colors):
            rgba = piece.colors[material_id]
            if rgba is not None:
                counts[rgba] = counts.get(rgba, 0) + size
    return counts


def kernel_products(ifc: Any) -> list[Any]:
    """The products the iterator considers (every product with a representation, no voids)."""
    return [
        product
        for product in ifc.by_type("IfcProduct")
        if product.Representation is not None
        and not any(product.is_a(name) for name in EXCLUDED_CLASSES)
    ]


def body_candidates(ifc: Any) -> dict[int, Any]:
    """Products with a 3D body representation (what the iterator should triangulate)."""
    candidates: dict[int, Any] = {}
    for product in ifc.by_type("IfcProduct"):
        if any(product.is_a(name) for name in EXCLUDED_CLASSES):
            continue
        shape = getattr(product, "Representation", None)
        if shape is None:
            continue
        for representation in shape.Representations or ():
            context = representation.ContextOfItems
            identifier = representation.RepresentationIdentifier
            is_model = context is not None and _context_type(context) == "Model"
            if representation.RepresentationType in NON_BODY_TYPES:
                continue
            if is_model and (identifier in BODY_IDENTIFIERS or identifier is None):
                candidates[product.id()] = product
                break
    return candidates


def _context_type(context: Any) -> str | None:
    if context.is_a("IfcGeometricRepresentationSubContext"):
        return str(context.ContextType or _context_type(context.ParentContext) or "")
    return str(context.ContextType) if context.ContextType else None

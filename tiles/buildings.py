"""The buildings layer: IFC element meshes and city-model building surfaces, with their colours,
normals and attributes.

Spaces (``is_space``) are left out by default: they are volumes that would hide the walls.
Element meshes are stored as MULTIPOLYGONZ triangles; each is transformed vertex by vertex
into the tile's ENU frame. City-model buildings (CityJSON/CityGML, ``building_surface``) are
features too, one per building, LoD and semantic class, at each building's highest LoD and
coloured by class (roofs red, walls white, ground grey); their feature ids are the negated
``building_surface`` ids so they never meet an element's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from psycopg import Connection

from tiles.blocks import BlockMesh, block_meshes
from tiles.city_surfaces import read_city_surfaces
from tiles.coarse import BLOCK_ID_BASE, ROOF_ID_BASE
from tiles.content import MeshParts, SharedMesh, TileFrame, rgba_bytes
from tiles.gltf import FeatureTable, PropertyColumn
from tiles.subdivide import FeatureIndex, fetch_index, without_jit

DATASET_KINDS: tuple[str, ...] = ("ifc", "buildings")
CLASS_NAME = "building_element"

DEFAULT_COLOURS: dict[str, tuple[float, float, float, float]] = {
    "IfcWindow": (0.55, 0.75, 0.9, 0.4),
    "IfcDoor": (0.55, 0.4, 0.25, 1.0),
    "IfcSlab": (0.7, 0.7, 0.7, 1.0),
    "IfcRoof": (0.6, 0.25, 0.2, 1.0),
    "IfcBeam": (0.6, 0.6, 0.65, 1.0),
    "IfcColumn": (0.6, 0.6, 0.65, 1.0),
    "IfcStair": (0.65, 0.6, 0.55, 1.0),
    "IfcRailing": (0.4, 0.4, 0.4, 1.0),
    "IfcSpace": (0.3, 0.6, 0.9, 0.25),
    "RoofSurface": (0.72, 0.3, 0.24, 1.0),
    "WallSurface": (0.93, 0.91, 0.86, 1.0),
    "GroundSurface": (0.5, 0.5, 0.5, 1.0),
}
FALLBACK_COLOUR = (0.85, 0.85, 0.82, 1.0)


def _filter(include_spaces: bool) -> str:
    return "" if include_spaces else "AND NOT e.is_space"


def load_index(
    connection: Connection[Any],
    *,
    sensitive: frozenset[str] = frozenset(),
    restricted: bool = False,
    include_spaces: bool = False,
) -> FeatureIndex:
    """Id, 3D box and triangle count of every element of every ready IFC dataset, and of the
    surfaces of city-model buildings (finest LoD) that no IFC building supersedes, sorted by id;
    the surfaces' columns the coarse hierarchy needs come with it (``city``, read in the same
    pass: :mod:`tiles.city_surfaces`).

    Buildings have no sensitive utility classes: ``restricted`` gives an empty index.
    """
    if restricted:
        return FeatureIndex(np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros(0, np.int64))
    sql = f"""
        SELECT e.id, ST_XMin(b), ST_YMin(b), ST_ZMin(b), ST_XMax(b), ST_YMax(b), ST_ZMax(b),
               CASE WHEN e.triangle_count > 0 THEN e.triangle_count
                    ELSE ST_NumGeometries(e.mesh) END
        FROM building_element e
        JOIN dataset d ON d.id = e.dataset_id AND d.status = 'ready',
        LATERAL (SELECT coalesce(e.bbox3d, Box3D(e.mesh)) AS b) x
        WHERE e.mesh IS NOT NULL {_filter(include_spaces)}
        ORDER BY 1
    """
    elements = fetch_index(connection, sql)
    surfaces, city = read_city_surfaces(connection)
    if len(surfaces) == 0:
        return elements
    if len(elements) == 0:
        surfaces.city = city
        return surfaces
    return FeatureIndex(  # surfaces (negative ids) first: the whole is sorted by id
        np.concatenate([surfaces.ids, elements.ids]),
        np.concatenate([surfaces.boxes, elements.boxes]),
        np.concatenate([surfaces.triangles, elements.triangles]),
        city=city,
    )


# Scalar subqueries (index lookups), so a tile never scans the storey or building tables.
CONTENT_SQL = """
    SELECT e.id, ST_AsBinary(e.mesh), e.color, e.guid, e.ifc_class, e.name,
           (SELECT s.name FROM building_storey s WHERE s.id = e.storey_id),
           (SELECT coalesce(b.name, b.guid) FROM building b WHERE b.id = e.building_id),
           e.material
    FROM building_element e
    WHERE e.id = ANY(%s::bigint[])
    ORDER BY e.id
"""


# The same columns for a city-model surface: its class in ``ifc_class``, its building's id.
# The building is looked up per surface (``OFFSET 0`` keeps the lateral from being flattened into
# a join): a join let the planner hash the whole building table for every batch of tiles
# (0.37 s against 0.11 s per 20k surfaces at 200k buildings, and growing with the city).
SURFACE_SQL = """
    SELECT -s.id, ST_AsBinary(s.geom), NULL::float8[], coalesce(b.source_id, b.guid), s.semantic,
           b.name, 'LoD ' || s.lod, coalesce(b.name, b.source_id, b.guid), NULL
    FROM building_surface s
    CROSS JOIN LATERAL (SELECT b.source_id, b.guid, b.name FROM building b
                        WHERE b.id = s.building_id OFFSET 0) b
    WHERE s.id = ANY(%s::bigint[])
"""


# The LOD1 block of a building (coarse tiles, :mod:`tiles.coarse`), named after one of its
# surfaces: the same columns, then its footprint (none: no block drawn), base and top (from the
# building row; from the surfaces at that LoD only where the row has none: coalesce evaluates no
# more than it needs, and the surface's own geometry is never read). No ``building`` text: a
# block is its building, whose name and source id it has already (coarse tiles stay light).
BLOCK_SQL = """
    SELECT -(%s + s.id), ST_AsBinary(b.footprint), NULL::float8[],
           coalesce(b.source_id, b.guid), 'Building', b.name,
           NULL, NULL, NULL,
           coalesce(b.base_z, (SELECT min(ST_ZMin(t.geom)) FROM building_surface t
                               WHERE t.building_id = s.building_id AND t.lod = s.lod)),
           coalesce(b.top_z, (SELECT max(ST_ZMax(t.geom)) FROM building_surface t
                              WHERE t.building_id = s.building_id AND t.lod = s.lod))
    FROM building_surface s
    CROSS JOIN LATERAL (SELECT b.footprint, b.source_id, b.guid, b.name, b.base_z, b.top_z
                        FROM building b WHERE b.id = s.building_id OFFSET 0) b
    WHERE s.id = ANY(%s::bigint[])
"""


def triangles_from_wkb(blobs: list[bytes]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(m, 3, 3) triangles and the index of the geometry each came from.

    Fast path: every polygon is a closed 4-point ring (a triangle). Other polygons (quads or
    larger, as some writers store planar faces) are fan-triangulated from their outer ring.
    """
    fast = _triangles_from_iso_wkb(blobs)
    if fast is not None:
        return fast
    geoms = shapely.from_wkb(np.array(blobs, dtype=object))
    parts, owner = shapely.get_parts(geoms, return_index=True)
    counts = shapely.get_num_coordinates(parts)
    coords = shapely.get_coordinates(parts, include_z=True)
    if parts.size and (counts == 4).all():
        return coords.reshape(-1, 4, 3)[:, :3].copy(), owner.astype(np.int64)
    triangles: list[npt.NDArray[np.float64]] = []
    owners: list[npt.NDArray[np.int64]] = []
    rings = shapely.get_coordinates(shapely.get_exterior_ring(parts), include_z=True)
    starts = np.concatenate(
        [[0], np.cumsum(shapely.get_num_coordinates(shapely.get_exterior_ring(parts)))]
    )
    for k in range(parts.size):
        ring = rings[starts[k] : starts[k + 1] - 1]  # drop the closing point
        if ring.shape[0] < 3:
            continue
        fan = np.stack(
            [np.repeat(ring[:1], ring.shape[0] - 2, axis=0), ring[1:-1], ring[2:]], axis=1
        )
        triangles.append(fan)
        owners.append(np.full(fan.shape[0], owner[k], dtype=np.int64))
    if not triangles:
        return np.zeros((0, 3, 3)), np.zeros(0, np.int64)
    return np.concatenate(triangles), np.concatenate(owners)


TRIANGLE_BYTES = 109  # polygon header (1 + 4 + 4 + 4) + 4 points x 3 doubles


def _triangles_from_iso_wkb(
    blobs: list[bytes],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None:
    """Vectorised reader of little-endian ISO WKB MultiPolygonZ made only of triangles.

    That is what PostGIS's ``ST_AsBinary`` returns for the importer's meshes, and reading it
    with numpy is several times faster than shapely's parse + get_parts. Anything else
    (quads, holes, big-endian) returns None and takes the general path.
    """
    if not blobs:
        return np.zeros((0, 3, 3)), np.zeros(0, np.int64)
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
    counts = (lengths - 9) // TRIANGLE_BYTES
    if ((lengths - 9) % TRIANGLE_BYTES).any() or (counts < 0).any():
        return None
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    head = data[starts[:, None] + np.arange(9)]
    header = head[:, 1:9].copy().view("<u4")  # type, number of polygons
    if (head[:, 0] != 1).any() or (header[:, 0] != 1006).any() or (header[:, 1] != counts).any():
        return None
    owner = np.repeat(np.arange(len(blobs), dtype=np.int64), counts)
    local = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    triangle_starts = np.repeat(starts + 9, counts) + local * TRIANGLE_BYTES
    polygon = data[triangle_starts[:, None] + np.arange(13)]
    if (polygon[:, 0] != 1).any():
        return None
    fields = polygon[:, 1:13].copy().view("<u4")  # type, rings, points
    if (fields[:, 0] != 1003).any() or (fields[:, 1] != 1).any() or (fields[:, 2] != 4).any():
        return None
    coordinates = data[triangle_starts[:, None] + 13 + np.arange(96)].copy().view("<f8")
    return coordinates.reshape(-1, 4, 3)[:, :3].copy(), owner


Row = tuple[Any, ...]


def fetch_rows(connection: Connection[Any], ids: npt.NDArray[np.int64]) -> dict[int, Row]:
    """The content rows of the elements and surfaces ``ids`` (one query each for a batch of
    tiles), by id."""
    found: dict[int, Row] = {}
    blocks = ids <= -BLOCK_ID_BASE
    roofs = ids <= -ROOF_ID_BASE
    with connection.cursor(binary=True) as cursor:
        without_jit(cursor)
        for sql, wanted in ((CONTENT_SQL, ids[ids > 0]), (SURFACE_SQL, -ids[(ids < 0) & ~blocks])):
            if wanted.size:
                cursor.execute(sql, (_bigint_array(wanted),))
                found.update((int(row[0]), row) for row in cursor.fetchall())
        for base, drawn in ((BLOCK_ID_BASE, blocks & ~roofs), (ROOF_ID_BASE, roofs)):
            if drawn.any():
                cursor.execute(BLOCK_SQL, (base, _bigint_array(-ids[drawn] - base)))
                found.update((int(row[0]), row) for row in cursor.fetchall())
    return found


def _bigint_array(values: npt.NDArray[np.int64]) -> str:
    """``values`` as a Postgres array literal (cast to ``bigint[]`` in the query): psycopg
    dumps a list of ints one element at a time in Python (~2.8 s of a 200k-building layer
    under cProfile), one join of their text is a small fraction of that.

    Examples
    --------
    >>> _bigint_array(np.array([3, -1]))
    '{3,-1}'
    """
    return "{" + ",".join(map(str, values.tolist())) + "}"


def tile_content(
    connection: Connection[Any], ids: npt.NDArray[np.int64], frame: TileFrame, *, leaf: bool
) -> tuple[MeshParts, FeatureTable]:
    """Meshes and the property table of the elements ``ids`` (feature id = order of ids)."""
    found = fetch_rows(connection, ids)
    keys = sorted(int(i) for i in ids if int(i) in found)
    return mesh_tile([(k, found[k]) for k in keys], frame, leaf=leaf)


def mesh_tile(
    keyed_rows: list[tuple[int, Row]], frame: TileFrame, *, leaf: bool
) -> tuple[MeshParts, FeatureTable]:
    """Meshes and the property table of one tile's features (feature id = position): element
    and surface meshes as they are at every level, blocks (coarse tiles) as LOD1 blocks.

    A tile of blocks alone (every coarse tile) has no ``ifc_class`` values: the class's
    default, ``Building``, says it for each of them."""
    del leaf
    rows = [row for _, row in keyed_rows]
    keys = np.fromiter((key for key, _ in keyed_rows), dtype=np.int64, count=len(rows))
    is_block = keys <= -BLOCK_ID_BASE
    meshes = np.flatnonzero(~is_block)
    parts = MeshParts()
    if meshes.size:
        mesh_rows = [rows[k] for k in meshes.tolist()]
        triangles, owner = triangles_from_wkb([row[1] for row in mesh_rows])
        if triangles.shape[0]:
            colours = _colours(mesh_rows)
            parts.triangles.append(frame.triangles_to_local(triangles))
            parts.colors.append(colours[owner])
            parts.feature_ids.append(meshes[owner].astype(np.float32))
    if is_block.any():
        parts.shared.extend(
            _block_meshes(
                [rows[k] for k in np.flatnonzero(is_block)], np.flatnonzero(is_block), frame
            )
        )
    blocks_only = bool(rows) and bool(is_block.all())
    columns = [
        PropertyColumn("guid", "STRING", [r[3] for r in rows], "IFC GlobalId"),
        PropertyColumn(
            "ifc_class", "STRING", [r[4] for r in rows], "IFC entity",
            default="Building" if blocks_only else None,
        ),
        PropertyColumn("name", "STRING", [r[5] for r in rows]),
        PropertyColumn("storey", "STRING", [r[6] for r in rows], "IfcBuildingStorey name"),
        PropertyColumn("building", "STRING", [r[7] for r in rows], "IfcBuilding name"),
        PropertyColumn("material", "STRING", [r[8] for r in rows]),
        PropertyColumn(
            "element_id",
            "INT32",
            _element_ids(keys).tolist(),
            "building_element.id (negative: minus the building_surface.id of a city model)",
            no_data=0,  # -1 is surface 1's
        ),
    ]  # fmt: skip
    return parts, FeatureTable("cim_buildings", CLASS_NAME, len(rows), columns)


def _element_ids(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The ``element_id`` of each feature: a block shows the surface it is named after."""
    base = np.where(keys <= -ROOF_ID_BASE, ROOF_ID_BASE, 0)
    return keys + np.where((keys <= -BLOCK_ID_BASE) & (base == 0), BLOCK_ID_BASE, base)


def _colours(rows: list[Row]) -> npt.NDArray[np.uint8]:
    """(n, 4) RGBA bytes of the rows: their own colour, else their class's (looked up once a
    colour and class, not once a row: 600k rows of a 200k-building city took 1.9 s)."""
    palette: dict[tuple[Any, str], int] = {}
    colours: list[npt.NDArray[np.uint8]] = []
    codes: list[int] = []
    for row in rows:
        key = (None if row[2] is None else tuple(row[2]), row[4])
        code = palette.get(key)
        if code is None:
            code = palette[key] = len(colours)
            colours.append(_colour(row[2], row[4]))
        codes.append(code)
    return np.array(colours, dtype=np.uint8).reshape(-1, 4)[np.array(codes, dtype=np.int64)]


def _block_meshes(
    rows: list[Row], positions: npt.NDArray[np.int64], frame: TileFrame
) -> list[SharedMesh]:
    """The blocks of ``rows`` (features ``positions``, in ``frame``): roofs coloured as roofs,
    walls as walls, floors as ground. Roofs alone (the higher coarse tiles, seen from far
    above) have no walls and no normals: drawn unlit, a flat roof looks the same from above, at
    28 bytes a vertex less."""
    footprints, bases, tops = [r[1] for r in rows], [r[9] for r in rows], [r[10] for r in rows]
    standing = [row[0] > -ROOF_ID_BASE for row in rows]
    out = []
    for walls in (False, True):
        chosen = [k for k, whole in enumerate(standing) if whole == walls]
        if not chosen:
            continue
        roofs, sides, floors = block_meshes(
            [footprints[k] for k in chosen], [bases[k] for k in chosen],
            [tops[k] for k in chosen], frame.lift, walls=walls,
        )  # fmt: skip
        features = positions[np.asarray(chosen, dtype=np.int64)]
        out.append(_shared(roofs, features, "RoofSurface", normals=walls))
        if walls:
            out.append(_shared(sides, features, "WallSurface", normals=True))
            out.append(_shared(floors, features, "GroundSurface", normals=True))
    return out


def _shared(
    mesh: BlockMesh, features: npt.NDArray[np.int64], surface: str, *, normals: bool
) -> SharedMesh:
    return SharedMesh(
        mesh.vertices, mesh.triangles, features[mesh.owner].astype(np.float32),
        rgba_bytes(DEFAULT_COLOURS[surface]), normals=normals,
    )  # fmt: skip


def _colour(colour: list[float] | None, ifc_class: str) -> npt.NDArray[np.uint8]:
    if colour is not None and len(colour) >= 3 and all(c is not None for c in colour):
        return rgba_bytes(list(colour) + ([1.0] if len(colour) == 3 else []))
    return rgba_bytes(DEFAULT_COLOURS.get(ifc_class, FALLBACK_COLOUR))

"""Extent of each dataset in longitude/latitude (CRS84), for fly-to in the viewer."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# Every table that holds a dataset's geometry, with the expression giving that geometry.
_GEOMETRY_SOURCES = (
    ("terrain_raster", "ST_Envelope(rast)"),
    ("building", "footprint"),
    ("building_element", "mesh"),
    ("pipe_node", "geom"),
    ("pipe_segment", "geom"),
    ("shelter", "geom"),
    ("population_unit", "geom"),
    ("hazard_zone", "geom"),
    ("road_segment", "geom"),
)

# Tables whose geometries carry real heights (Z in metres, ellipsoidal - see cim.crs).
_HEIGHT_SOURCES = (("building_element", "mesh"), ("pipe_node", "geom"), ("pipe_segment", "geom"))

Extent = tuple[float, float, float, float]
"""(west, south, east, north) in degrees."""


def dataset_extents(session: Session, *, storage_srid: int) -> dict[int, Extent]:
    """Extent of every dataset that has geometry, keyed by dataset id.

    The extent is the storage-CRS bounding box of all the dataset's rows, its corners
    transformed to CRS84 (good enough to frame a camera, not a precise footprint).
    """
    parts = " UNION ALL ".join(
        f"SELECT dataset_id, ST_Extent({expression})::geometry AS box "
        f"FROM {table} GROUP BY dataset_id"
        for table, expression in _GEOMETRY_SOURCES
    )
    rows = session.execute(
        text(
            f"""
            SELECT dataset_id, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
            FROM (
                SELECT dataset_id,
                       ST_Transform(ST_SetSRID(ST_Extent(box)::geometry, :srid), 4326) AS b
                FROM ({parts}) AS boxes
                WHERE box IS NOT NULL
                GROUP BY dataset_id
            ) AS extents
            """
        ),
        {"srid": storage_srid},
    ).all()
    return {
        int(row[0]): (float(row[1]), float(row[2]), float(row[3]), float(row[4])) for row in rows
    }


def dataset_heights(session: Session) -> dict[int, tuple[float, float]]:
    """(lowest, highest) Z of each dataset with 3D geometry, keyed by dataset id."""
    parts = " UNION ALL ".join(
        f"SELECT dataset_id, ST_ZMin(ST_3DExtent({column})) AS low,"
        f" ST_ZMax(ST_3DExtent({column})) AS high FROM {table} GROUP BY dataset_id"
        for table, column in _HEIGHT_SOURCES
    )
    rows = session.execute(
        text(f"SELECT dataset_id, min(low), max(high) FROM ({parts}) AS z GROUP BY dataset_id")
    ).all()
    return {int(row[0]): (float(row[1]), float(row[2])) for row in rows if row[1] is not None}

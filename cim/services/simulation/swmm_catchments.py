"""Default subcatchments for a stored SWMM network that has none (flood simulation).

Rain falls on subcatchments; a drainage network imported without them (pipes only) would
carry no storm water. The stand-in is documented in :func:`default_subcatchments` and listed
in every answer's ``defaults``.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.services.simulation.swmm_model import SwmmModel, number

DEFAULT_CORRIDOR_M = 30.0
DEFAULT_IMPERVIOUS_PERCENT = 60.0
DEFAULT_SLOPE_PERCENT = 0.5
#: [SUBAREAS] N-Imperv, N-Perv, S-Imperv, S-Perv (mm), %Zero: the SWMM 5 user's manual's
#: typical values (smooth asphalt/concrete n 0.012, short grass 0.15; depression storage
#: 0.05-0.1 in impervious, 0.1-0.3 in lawns) and SWMM's default 25 % with no depression storage.
DEFAULT_SUBAREA_MM = (0.012, 0.15, 1.9, 5.1, 25.0)
#: [INFILTRATION] Horton max rate, min rate (mm/h), decay (1/h), dry time (days): SWMM 5's
#: defaults (3.0 in/h, 0.5 in/h, 4 /h, 7 days).
DEFAULT_HORTON = (76.2, 12.7, 4.0, 7.0)


def default_subcatchments(session: Session, model: SwmmModel) -> None:
    """One subcatchment per junction or storage node where the network has none.

    The area a node drains is its Thiessen (Voronoi) cell among the inlet nodes, clipped to a
    corridor of :data:`DEFAULT_CORRIDOR_M` either side of the network's links: a stand-in for
    the street and roof area around the pipes, not a delineated catchment. Imperviousness
    60 %, slope 0.5 %, width = sqrt(area) (a square catchment), subareas and Horton infiltration
    at SWMM's typical values (:data:`DEFAULT_SUBAREA_MM`, :data:`DEFAULT_HORTON`). They get the
    first rain gage; with no gage, only a design storm can rain on them.
    """
    inlets = [n for n, k in model.node_kind.items() if k in ("junction", "storage")]
    if not inlets:
        return
    rows = session.execute(
        text(
            "SELECT n.code, ST_X(n.geom) AS x, ST_Y(n.geom) AS y FROM pipe_node n"
            " WHERE n.dataset_id = :d AND n.code = ANY(:codes) ORDER BY n.id"
        ),
        {"d": model.dataset_id, "codes": inlets},
    ).all()
    corridor = session.execute(
        text(
            "SELECT ST_AsBinary(ST_Buffer(ST_Collect(ST_Force2D(geom)), :r))"
            " FROM pipe_segment WHERE dataset_id = :d"
        ),
        {"d": model.dataset_id, "r": DEFAULT_CORRIDOR_M},
    ).scalar_one()
    area_of = _thiessen_areas(list(rows), shapely.from_wkb(bytes(corridor)) if corridor else None)
    gages = [ln.split()[0] for ln in model.sections.get("RAINGAGES", []) if ln.split()]
    gage = gages[0] if gages else "DESIGN"
    us = model.us_units
    scale = 1 / 4046.8564224 if us else 1 / 10_000.0  # acres or hectares
    n_imp, n_perv, s_imp, s_perv, zero = DEFAULT_SUBAREA_MM
    depth = 1 / 25.4 if us else 1.0
    sub, areas, infiltration = [], [], []
    for code, area in area_of.items():
        if area <= 0:
            continue
        name = f"S_{code}"
        width = math.sqrt(area) / model.length_scale
        sub.append(
            f"{name} {gage} {code} {number(area * scale)} {DEFAULT_IMPERVIOUS_PERCENT:g} "
            f"{number(width)} {DEFAULT_SLOPE_PERCENT:g} 0"
        )
        areas.append(
            f"{name} {n_imp} {n_perv} {number(s_imp * depth)} {number(s_perv * depth)} "
            f"{zero:g} OUTLET"
        )
        hi, lo, decay, dry = DEFAULT_HORTON
        infiltration.append(f"{name} {number(hi * depth)} {number(lo * depth)} {decay:g} {dry:g}")
    for keyed in ("POLYGONS", "COVERAGES", "LOADINGS", "LID_USAGE", "GROUNDWATER", "GWF"):
        model.sections.pop(keyed, None)  # rows of subcatchments that are no more
    model.sections["SUBCATCHMENTS"] = sub
    model.sections["SUBAREAS"] = areas
    model.sections["INFILTRATION"] = infiltration
    model.set_option("INFILTRATION", "HORTON")
    model.defaults.append(
        f"subcatchments: none stored; {len(sub)} generated, one per inlet node (Thiessen cell "
        f"within {DEFAULT_CORRIDOR_M:g} m of the pipes, {DEFAULT_IMPERVIOUS_PERCENT:g} % "
        f"impervious, slope {DEFAULT_SLOPE_PERCENT:g} %, Horton infiltration at SWMM defaults)"
    )


def _thiessen_areas(rows: list[Any], corridor: Any) -> dict[str, float]:
    """Area (m²) of each node's Voronoi cell inside the corridor."""
    if corridor is None or not rows:
        return {}
    points = shapely.points([(r.x, r.y) for r in rows])
    if len(rows) == 1:
        return {rows[0].code: float(corridor.area)}
    cells = shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=corridor)
    out: dict[str, float] = {}
    parts = list(shapely.get_parts(cells))
    tree = shapely.STRtree(parts)
    for row, point in zip(rows, points, strict=True):
        hits = tree.query(point, predicate="intersects")
        if len(hits):
            out[row.code] = float(shapely.intersection(parts[int(hits[0])], corridor).area)
    return out

"""Adjacent-space risk (燃气相邻地下空间): the underground spaces of other classes next to gas
pipes, their distance and vertical relation to the nearest gas pipe, ranked by risk.

Leaked gas migrates through the soil and along conduits into nearby wells, chambers, tunnels
and basements and explodes there; lifeline programmes put methane sensors in those spaces.
This service lists them for all gas pipes, those crossing an area, or one segment (or the gas
pipe nearest a point), ranked by the score of :mod:`cim.services.gas.risk` (formula, weights
and sources there; the spaces and their sizes in :mod:`cim.services.gas.spaces`), and can
suggest ``sensors`` sites (:mod:`cim.services.gas.sensors`). Gas is a sensitive class: a
caller who may not see it is refused (401), and hidden classes are left out of the spaces.
"""

from __future__ import annotations

import datetime
from collections import Counter

import shapely
from shapely.ops import nearest_points
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput
from cim.services.gas.gas_pipes import GAS_UTILITY, GasPipe, gas_pipes
from cim.services.gas.geojson import adjacency_geojson
from cim.services.gas.models import (
    AdjacentSpace,
    AdjacentSpaceReport,
    GasPipeRef,
    SpaceRisk,
    VerticalRelation,
)
from cim.services.gas.risk import DEFAULT_RADIUS_M, risk_score
from cim.services.gas.sensors import DEFAULT_PIECE_M, suggest_sensor_sites
from cim.services.gas.spaces import Space, building_spaces, chamber_spaces, tunnel_spaces
from cim.services.pipes.graph import nearest_segment
from cim.services.pipes.inputs import ewkt, parse_polygon
from cim.services.pipes.scope import no_jit, pipe_dataset_ids, refuse_hidden, session_srid

MAX_RADIUS_M = 100.0
"""Largest search radius accepted: beyond it "adjacent" means nothing and the answer explodes."""
MAX_SENSORS = 200


def adjacent_spaces(
    session: Session,
    *,
    segment_id: int | None = None,
    point: tuple[float, float] | None = None,
    area: object | None = None,
    dataset_id: int | None = None,
    radius_m: float = DEFAULT_RADIUS_M,
    limit: int = 1000,
    sensors: int = 0,
    piece_m: float = DEFAULT_PIECE_M,
    as_of_year: int | None = None,
    tolerance_m: float = 50.0,
    hidden_utilities: frozenset[str] = frozenset(),
    with_geojson: bool = True,
    output_crs: str | None = None,
) -> AdjacentSpaceReport:
    """Spaces within ``radius_m`` of the gas pipes in scope, ranked by risk (storage CRS).

    Scope: ``segment_id``, or the gas pipe nearest ``point`` (within ``tolerance_m``), or the
    gas pipes crossing ``area`` (GeoJSON/WKT polygon), or all of them; ``dataset_id`` limits
    the gas pipes (spaces are searched in every pipe dataset). ``as_of_year`` dates the pipe
    ages (default this year). ``sensors`` > 0 adds that many suggested sensor sites.
    """
    refuse_hidden(GAS_UTILITY, hidden_utilities)
    _check(radius_m, limit, sensors, [segment_id, point, area])
    srid = session_srid(session)
    no_jit(session)
    year = as_of_year if as_of_year is not None else datetime.date.today().year
    datasets = pipe_dataset_ids(session, dataset_id)
    if point is not None:
        segment_id = nearest_segment(
            session, x=point[0], y=point[1], srid=srid, dataset_ids=datasets,
            utilities=[GAS_UTILITY], tolerance_m=tolerance_m,
        )  # fmt: skip
    area_ewkt = ewkt(parse_polygon(area, what="area"), srid) if area is not None else None
    pipes = gas_pipes(session, datasets=datasets, segment_id=segment_id, area_ewkt=area_ewkt)
    by_id = {p.id: p for p in pipes}
    found: list[Space] = []
    unknown_buildings = 0
    if pipes:
        found, unknown_buildings = _spaces_near(session, by_id, radius_m, hidden_utilities)
    bounds.check_deadline("gas: scoring the spaces")
    ranked = rank_spaces(found, by_id, radius_m=radius_m, as_of_year=year)
    listed = ranked[:limit]
    suggestion = None
    if sensors > 0 and pipes:
        suggestion = suggest_sensor_sites(
            pipes, found, k=sensors, radius_m=radius_m, piece_m=piece_m, as_of_year=year
        )
    return AdjacentSpaceReport(
        radius_m=radius_m,
        as_of_year=year,
        gas_pipe_count=len(pipes),
        gas_length_m=round(sum(shapely.force_2d(p.line).length for p in pipes), 3),
        space_count=len(ranked),
        spaces=listed,
        counts_by_type=dict(sorted(Counter(s.space_type for s in ranked).items())),
        buildings_without_basement_data=unknown_buildings,
        notes=_notes(pipes, ranked, radius_m),
        sensors=suggestion,
        geojson=(
            adjacency_geojson(session, listed, found, by_id, srid, output_crs)
            if with_geojson
            else None
        ),
        truncated=len(listed) < len(ranked),
    )


def _spaces_near(
    session: Session, pipes: dict[int, GasPipe], radius_m: float, hidden: frozenset[str]
) -> tuple[list[Space], int]:
    """Wells, tunnels (in every pipe dataset) and basements near ``pipes``; buildings in reach
    without basement data."""
    everywhere = pipe_dataset_ids(session, None)
    wells = chamber_spaces(session, pipes, radius_m=radius_m, datasets=everywhere, hidden=hidden)
    tunnels = tunnel_spaces(session, pipes, radius_m=radius_m, datasets=everywhere, hidden=hidden)
    basements, unknown = building_spaces(session, pipes, radius_m=radius_m)
    return wells + tunnels + basements, unknown


def _check(radius_m: float, limit: int, sensors: int, scopes: list[object]) -> None:
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise InvalidInput(f"radius_m must be above 0 and at most {MAX_RADIUS_M:g} m")
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    bounds.current().check_limit(limit)
    if not 0 <= sensors <= MAX_SENSORS:
        raise InvalidInput(f"sensors must be between 0 and {MAX_SENSORS}")
    if sum(s is not None for s in scopes) > 1:
        raise InvalidInput("give at most one of segment_id, point or area")


def rank_spaces(
    spaces: list[Space], pipes: dict[int, GasPipe], *, radius_m: float, as_of_year: int
) -> list[AdjacentSpace]:
    """Every space scored against its nearest gas pipe, riskiest first (ties: nearer first,
    then layer and id), ranks from 1."""
    scored = [_scored(s, pipes[s.gas_id], radius_m, as_of_year) for s in spaces]
    scored.sort(key=lambda a: (-a.risk.score, a.distance_m, a.layer, a.id))
    return [a.model_copy(update={"rank": i}) for i, a in enumerate(scored, start=1)]


def vertical_relation(
    space: Space, pipe: GasPipe
) -> tuple[VerticalRelation, float | None, shapely.Point, float | None]:
    """(relation, clear gap m, point on the pipe nearest the space, pipe centre z there)."""
    _, on_pipe = nearest_points(space.geom, shapely.force_2d(pipe.line))
    centre = pipe.centre_z_at(on_pipe)
    if centre is None or space.bottom_z is None:
        return "unknown", None, on_pipe, centre
    top, invert = centre + pipe.height_m / 2.0, centre - pipe.height_m / 2.0
    if space.bottom_z > top:
        return "above", space.bottom_z - top, on_pipe, centre
    if space.bottom_z < invert:
        return "below", invert - space.bottom_z, on_pipe, centre
    return "level", 0.0, on_pipe, centre


def _scored(space: Space, pipe: GasPipe, radius_m: float, as_of_year: int) -> AdjacentSpace:
    relation, gap, _, _ = vertical_relation(space, pipe)
    factors = risk_score(
        distance_m=space.distance_m,
        radius_m=radius_m,
        pressure_rank=pipe.pressure_rank,
        material=pipe.material,
        year=pipe.year,
        as_of_year=as_of_year,
        space_type=space.space_type,
        volume_m3=space.volume_m3,
    )
    return AdjacentSpace(
        rank=0,
        layer=space.layer,
        id=space.id,
        code=space.code,
        space_type=space.space_type,
        utility=space.utility,
        kind=space.kind,
        distance_m=round(space.distance_m, 3),
        bottom_z=None if space.bottom_z is None else round(space.bottom_z, 3),
        vertical_relation=relation,
        vertical_gap_m=None if gap is None else round(gap, 3),
        volume_m3=round(space.volume_m3, 3),
        volume_assumed=space.volume_assumed,
        gas_pipe=GasPipeRef(
            id=pipe.id,
            code=pipe.code,
            pressure=pipe.pressure,
            pressure_class=pipe.pressure_class,
            material=pipe.material,
            year=pipe.year,
        ),
        risk=SpaceRisk(
            distance=round(factors.distance, 6),
            pressure=factors.pressure,
            condition=round(factors.condition, 6),
            space=factors.space,
            volume=round(factors.volume, 6),
            score=round(factors.risk, 6),
        ),
    )


def _notes(pipes: list[GasPipe], ranked: list[AdjacentSpace], radius_m: float) -> list[str]:
    """What the answer assumed, so that nobody reads the score as more than it is."""
    notes = []
    if radius_m == DEFAULT_RADIUS_M:
        notes.append(f"search radius {radius_m:g} m is an unverified default (no standard found)")
    unknown_class = sum(p.pressure_class is None for p in pipes)
    if unknown_class:
        notes.append(f"{unknown_class} gas pipes have no GB 50028 pressure class: scored as 中压B")
    unknown_year = sum(p.year is None for p in pipes)
    if unknown_year:
        notes.append(f"{unknown_year} gas pipes have no year: aged one service life")
    assumed = sum(s.volume_assumed for s in ranked)
    if assumed:
        notes.append(f"{assumed} spaces have an assumed size (chamber plan area, tunnel section)")
    return notes


def shown_per_class(report: AdjacentSpaceReport) -> dict[str, int]:
    """Features of each utility class the answer shows (gas pipes named, spaces listed), for
    the audit trail of sensitive reads."""
    shown = Counter({GAS_UTILITY: len({s.gas_pipe.id for s in report.spaces})})
    shown.update(s.utility for s in report.spaces if s.utility)
    if report.isolation is not None:
        shown[GAS_UTILITY] += report.isolation.segment_count
    return {k: v for k, v in sorted(shown.items()) if v}

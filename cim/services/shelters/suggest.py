"""Where would k more shelters help most? A maximal covering location problem (MCLP).

Demand is the uncovered population of a plan (``demand="uncovered"``, default: the latest
plan) or every population unit (``demand="all"``). Candidate sites are either a shelter dataset
(a layer of possible sites) or a square grid over the demand (``grid_spacing_m``, default half the
radius). Sites inside zones of excluded hazard kinds are dropped. A demand unit counts as covered
when a chosen site lies within the radius of the new shelters' level; capacity is not modelled
(classic MCLP, as in spopt). Pairs come from a GiST ``ST_DWithin`` join, or with
``distance="network"`` from radius-limited Dijkstras along the roads; the MCLP is solved
exactly (HiGHS MIP) up to ``MCLP_EXACT_MAX_PAIRS`` pairs, else by greedy + swap with the LP bound
reported (``cim.services.shelters.solver.solve_mclp``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import shapely
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.crs import transformer
from cim.db import migrate
from cim.db.copy import copy_rows
from cim.errors import InvalidInput, NotFound
from cim.services.roads.graph import load_road_graph, road_datasets
from cim.services.shelters.levels import level_table
from cim.services.shelters.models import SiteSuggestion, SuggestedSite
from cim.services.shelters.network import network_pairs
from cim.services.shelters.plan import latest_plan_id
from cim.services.shelters.solver import solve_mclp

MAX_GRID_SITES = 200_000


class SuggestParameters(BaseModel):
    """What a site suggestion is computed from."""

    k: int = Field(1, ge=1, le=1000, description="How many new shelters to choose.")
    level: str = Field("short", description="Level of the new shelters (sets the radius).")
    radius_m: float | None = Field(None, gt=0, description="Override of the level's radius.")
    demand: Literal["uncovered", "all"] = Field(
        "uncovered", description="Uncovered persons of a plan, or every population unit."
    )
    plan_id: int | None = Field(None, description="Plan whose uncovered persons count; latest.")
    population_datasets: list[int] | None = Field(None, description="For demand='all'.")
    candidate_dataset: int | None = Field(
        None, description="A shelters dataset holding candidate sites; default: a grid."
    )
    grid_spacing_m: float | None = Field(None, gt=0, description="Grid step; default radius/2.")
    exclude_hazards: list[str] | None = Field(
        None, description="Hazard kinds whose zones exclude a candidate; default: all kinds."
    )
    distance: Literal["euclidean", "network"] = Field(
        "euclidean", description="'network': a site covers units within the radius along roads."
    )
    road_datasets: list[int] | None = Field(None, description="For 'network'; default: all.")
    access_max_m: float = Field(
        500.0, gt=0, description="For 'network': farther than this from every road = off it."
    )
    time_limit_s: float = Field(60.0, gt=0)

    @field_validator("exclude_hazards")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().lower() for v in value]


def _demand(session: Session, params: SuggestParameters) -> tuple[int | None, str]:
    """Fill temp table ``suggest_demand(id, weight, pt)``; returns the plan used."""
    session.execute(text("DROP TABLE IF EXISTS suggest_demand"))
    if params.demand == "all":
        bind: dict[str, Any] = {}
        where = "population > 0"
        if params.population_datasets is not None:
            where += " AND dataset_id = ANY(:ids)"
            bind["ids"] = params.population_datasets
        session.execute(
            text(
                "CREATE TEMP TABLE suggest_demand ON COMMIT DROP AS SELECT id, population AS "
                f"weight, ST_PointOnSurface(geom) AS pt FROM population_unit WHERE {where}"
            ),
            bind,
        )
        return None, "all population units"
    plan_id = params.plan_id if params.plan_id is not None else latest_plan_id(session)
    if (
        session.execute(text("SELECT 1 FROM shelter_plan WHERE id = :p"), {"p": plan_id}).first()
        is None
    ):
        raise NotFound(f"no shelter plan {plan_id}")
    session.execute(
        text(
            """
            CREATE TEMP TABLE suggest_demand ON COMMIT DROP AS
            SELECT u.id, sum(a.persons) AS weight, ST_PointOnSurface(u.geom) AS pt
            FROM shelter_assignment a JOIN population_unit u ON u.id = a.unit_id
            WHERE a.plan_id = :plan AND a.shelter_id IS NULL GROUP BY u.id
            """
        ),
        {"plan": plan_id},
    )
    return plan_id, f"uncovered persons of plan {plan_id}"


def _candidates(session: Session, params: SuggestParameters, radius: float, srid: int) -> int:
    """Fill temp table ``suggest_site(id, source_id, name, pt)``; returns how many sites."""
    session.execute(text("DROP TABLE IF EXISTS suggest_site"))
    session.execute(
        text(
            "CREATE TEMP TABLE suggest_site (id bigint, source_id bigint, name text, "
            f"pt geometry(Point, {srid})) ON COMMIT DROP"
        )
    )
    if params.candidate_dataset is not None:
        found = session.execute(
            text("SELECT 1 FROM dataset WHERE id = :d AND kind = 'shelters'"),
            {"d": params.candidate_dataset},
        ).first()
        if found is None:
            raise NotFound(f"no shelters dataset {params.candidate_dataset} for candidate sites")
        session.execute(
            text(
                "INSERT INTO suggest_site SELECT row_number() OVER (ORDER BY id) - 1, id, name, "
                "ST_PointOnSurface(geom) FROM shelter WHERE dataset_id = :d"
            ),
            {"d": params.candidate_dataset},
        )
    else:
        spacing = params.grid_spacing_m or radius / 2
        box = session.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                "FROM (SELECT ST_Extent(pt) AS e FROM suggest_demand) b"
            )
        ).one()
        if box[0] is not None:
            xs = np.arange(box[0] - radius + spacing / 2, box[2] + radius, spacing)
            ys = np.arange(box[1] - radius + spacing / 2, box[3] + radius, spacing)
            if len(xs) * len(ys) > MAX_GRID_SITES:
                raise InvalidInput(
                    f"a {spacing:.0f} m grid gives {len(xs) * len(ys)} sites (> {MAX_GRID_SITES});"
                    " use a larger grid_spacing_m or a candidate dataset"
                )
            gx, gy = np.meshgrid(xs, ys)
            copy_rows(
                session,
                table="suggest_site",
                columns=["id", "pt"],
                rows=(
                    [i, f"SRID={srid};POINT({x} {y})"]
                    for i, (x, y) in enumerate(zip(gx.ravel(), gy.ravel(), strict=True))
                ),
            )
    bind: dict[str, Any] = {}
    hazard = "TRUE"
    if params.exclude_hazards is not None:
        hazard, bind["kinds"] = "h.kind = ANY(:kinds)", params.exclude_hazards
    session.execute(
        text(
            f"DELETE FROM suggest_site c WHERE EXISTS (SELECT 1 FROM hazard_zone h "
            f"WHERE {hazard} AND ST_Intersects(h.geom, c.pt))"
        ),
        bind,
    )
    session.execute(text("CREATE INDEX ON suggest_site USING gist (pt)"))
    session.execute(text("ANALYZE suggest_site"))
    return int(session.execute(text("SELECT count(*) FROM suggest_site")).scalar_one())


def _network_pairs(
    session: Session, params: SuggestParameters, radius: float
) -> npt.NDArray[np.int64]:
    """(demand id, site id) pairs within ``radius`` along the roads (``shelters.network``)."""
    graph, _ = load_road_graph(session, params.road_datasets)
    demand = np.array(
        session.execute(
            text("SELECT id, weight, ST_X(pt), ST_Y(pt) FROM suggest_demand ORDER BY id")
        ).all(),
        dtype=np.float64,
    ).reshape(-1, 4)
    sites = np.array(
        session.execute(text("SELECT id, ST_X(pt), ST_Y(pt) FROM suggest_site ORDER BY id")).all(),
        dtype=np.float64,
    ).reshape(-1, 3)
    found = network_pairs(
        graph,
        demand[:, 2:4],
        np.asarray(shapely.points(sites[:, 1], sites[:, 2]), dtype=object).reshape(-1),
        np.full(len(sites), radius),
        access_max_m=params.access_max_m,
        units_mask=demand[:, 1] > 0,
    )
    return np.column_stack(
        [demand[found.unit, 0].astype(np.int64), sites[found.site, 0].astype(np.int64)]
    )


def _radius(params: SuggestParameters) -> float:
    """The service radius of the new shelters: the level's, or the override."""
    levels = level_table({params.level: params.radius_m} if params.radius_m else None)
    if params.level not in levels:
        raise InvalidInput(f"unknown level {params.level!r}; one of {', '.join(levels)}")
    return levels[params.level].radius_m


def _pairs(session: Session, params: SuggestParameters, radius: float) -> npt.NDArray[np.int64]:
    """(demand id, site id) pairs within ``radius``: straight (GiST) or along the roads."""
    if params.distance == "network":
        return _network_pairs(session, params, radius)
    return np.array(
        session.execute(
            text(
                "SELECT d.id, c.id FROM suggest_demand d JOIN suggest_site c "
                "ON ST_DWithin(d.pt, c.pt, :r)"
            ),
            {"r": radius},
        ).all(),
        dtype=np.int64,
    ).reshape(-1, 2)


def _chosen(
    session: Session,
    srid: int,
    site_ids: npt.NDArray[np.int64],
    covers: Callable[[int], float],
) -> list[SuggestedSite]:
    """The chosen sites with their coordinates (storage CRS and WGS84) and demand covered."""
    sites = session.execute(
        text(
            "SELECT id, source_id, name, ST_X(pt), ST_Y(pt) FROM suggest_site "
            "WHERE id = ANY(:ids) ORDER BY id"
        ),
        {"ids": site_ids.tolist()},
    ).all()
    to_wgs84 = transformer(srid, 4326)
    chosen = []
    for site_id, source_id, name, x, y in sites:
        lon, lat = to_wgs84.transform(x, y)
        chosen.append(
            SuggestedSite(
                site=int(site_id),
                shelter_id=source_id,
                name=name,
                x=x,
                y=y,
                lon=lon,
                lat=lat,
                covers=covers(int(site_id)),
            )
        )
    return chosen


def suggest_sites(session: Session, *, params: SuggestParameters) -> SiteSuggestion:
    """Choose ``k`` new shelter sites maximising the newly covered population."""
    started = time.perf_counter()
    srid = migrate.recorded_srid(session.connection())
    if srid is None:
        raise InvalidInput("the database has no cim schema")
    radius = _radius(params)
    if params.distance == "network":
        road_datasets(session, params.road_datasets)  # fail before the work: none, or unknown
    plan_id, described = _demand(session, params)
    n_sites = _candidates(session, params, radius, srid)
    demand = session.execute(text("SELECT id, weight FROM suggest_demand ORDER BY id")).all()
    demand_ids = np.array([r[0] for r in demand], dtype=np.int64)
    weight = np.array([r[1] for r in demand], dtype=np.float64)
    pairs = _pairs(session, params, radius)
    pair_demand = np.searchsorted(demand_ids, pairs[:, 0])
    # Sites dropped for hazards leave gaps in the ids; the solver wants 0..n-1.
    site_ids = np.array(
        session.execute(text("SELECT id FROM suggest_site ORDER BY id")).scalars().all(),
        dtype=np.int64,
    )
    pair_site = np.searchsorted(site_ids, pairs[:, 1])
    solution = solve_mclp(
        weight, pair_demand, pair_site, n_sites, params.k, time_limit_s=params.time_limit_s
    )

    def covers(site_id: int) -> float:
        return float(weight[np.unique(pair_demand[pairs[:, 1] == site_id])].sum())

    chosen = _chosen(session, srid, site_ids[solution.chosen], covers)
    total = float(weight.sum())
    return SiteSuggestion(
        distance=params.distance,
        demand=described,
        plan_id=plan_id,
        level=params.level,
        radius_m=radius,
        k=params.k,
        candidates=n_sites,
        pairs=len(pairs),
        demand_total=total,
        gain=solution.covered,
        gain_ratio=solution.covered / total if total else None,
        upper_bound=solution.upper_bound,
        method=solution.method,
        status=solution.status,
        solve_seconds=round(solution.seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
        sites=chosen,
    )

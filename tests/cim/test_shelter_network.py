"""Along-road shelter distances: the river town by hand, noding, polygons, networkx, LP."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np
import pulp
import pytest
import shapely
import shapely.ops
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.roads.graph import graph_from_lines
from cim.services.shelters.network import network_pairs
from cim.services.shelters.plan import PlanParameters, create_plan
from cim.services.shelters.solver import PairProblem, solve_split
from cim.services.shelters.suggest import SuggestParameters, suggest_sites
from importers.roads import node_lines
from tests.road_fixtures import engine_of, river  # noqa: F401  (fixture)


@pytest.fixture
def town(river: dict[str, Any]) -> Iterator[tuple[Session, dict[str, int]]]:  # noqa: F811
    """A session on the river town whose plans are rolled back, and the dataset ids."""
    with engine_of(river).connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session, river["ids"]
        finally:
            session.close()
            outer.rollback()


def _assignments(session: Session, plan_id: int) -> set[tuple[Any, ...]]:
    rows = session.execute(
        text(
            """SELECT s.name, u.code, a.persons, round(a.distance_m::numeric, 6), a.reason
               FROM shelter_assignment a JOIN population_unit u ON u.id = a.unit_id
               LEFT JOIN shelter s ON s.id = a.shelter_id WHERE a.plan_id = :p"""
        ),
        {"p": plan_id},
    ).all()
    return {(r[0], r[1], r[2], None if r[3] is None else float(r[3]), r[4]) for r in rows}


def test_roads_import_nodes_the_bridge_into_the_banks(river: dict[str, Any]) -> None:  # noqa: F811
    with engine_of(river).connect() as conn:
        counts, qc = conn.execute(
            text("SELECT counts, qc FROM dataset WHERE id = :d"), {"d": river["ids"]["roads"]}
        ).one()
        vertices_qc = conn.execute(
            text("SELECT qc FROM dataset WHERE id = :d"), {"d": river["ids"]["roads_vertices"]}
        ).scalar_one()
        rows = conn.execute(
            text(
                "SELECT name, kind, length, attrs FROM road_segment WHERE dataset_id = :d "
                "ORDER BY ST_XMin(geom), ST_YMin(geom)"
            ),
            {"d": river["ids"]["roads"]},
        ).all()
    # North road cut at its part joint (1500) and the bridge (2000), south road at the bridge.
    assert counts == {
        "features": 3,
        "segments": 6,
        "nodes": 7,
        "length_km": 6.2,
        "by_kind": {"primary": 5, "bridge": 1},
    }
    assert qc == {
        "noding": "intersections",
        "components": 1,
        "largest_component_share": 1.0,
        "dead_ends": 4,
        "zero_length_lines": 0,
    }
    assert sorted(r[2] for r in rows) == [200.0, 500.0, 1000.0, 1000.0, 1500.0, 2000.0]
    bridge = next(r for r in rows if r[1] == "bridge")
    assert bridge[0] == "Old Bridge" and bridge[3] == {"lanes": 2, "feature": 3}
    # Shared vertices only: the bridge touches the bank roads mid-line and stays apart.
    assert vertices_qc["components"] == 3 and vertices_qc["noding"] == "vertices"


def test_straight_line_and_along_road_plans_differ_as_worked_by_hand(
    town: tuple[Session, dict[str, int]],
) -> None:
    session, ids = town
    scope = {"shelter_datasets": [ids["shelters_ab"]], "population_datasets": [ids["units_ns"]]}
    straight = create_plan(session, params=PlanParameters(**scope)).model_dump()
    # U2 prefers A by 660 m, U1 by 300 m: U2 takes 50 of A's 100 places, U1 the other 50.
    u4_b = math.hypot(400, 550)
    assert _assignments(session, straight["id"]) == {
        ("A", "U1", 50.0, 300.0, None),
        ("B", "U1", 50.0, 600.0, None),
        ("A", "U2", 50.0, 20.0, None),
        ("B", "U4", 10.0, round(u4_b, 6), None),
    }
    assert straight["stats"]["distance"] == "euclidean" and "network" not in straight["stats"]
    assert straight["stats"]["person_distance_m"] == pytest.approx(46_000 + 10 * u4_b)

    roads = create_plan(
        session, params=PlanParameters(**scope, distance="network", road_datasets=[ids["roads"]])
    ).model_dump()
    # A is 2,300 m from U1 by the bridge (> 1,000); U4 is 600 m from every road (> 500).
    assert _assignments(session, roads["id"]) == {
        ("B", "U1", 100.0, 700.0, None),
        ("A", "U2", 50.0, 120.0, None),
        (None, "U4", 10.0, None, "out_of_reach"),
    }
    stats = roads["stats"]
    assert stats["distance"] == "network" and roads["parameters"]["distance"] == "network"
    assert stats["covered"] == 150.0 and stats["person_distance_m"] == 76_000.0
    assert stats["uncovered_by_reason"] == {
        "out_of_reach": 10.0,
        "in_hazard_zone": 0.0,
        "over_capacity": 0.0,
    }
    network = stats["network"]
    assert network["road_datasets"] == [ids["roads"]] and network["units_without_road"] == 1
    assert network["graph"]["segments"] == 6 and network["graph"]["nodes"] == 7
    assert network["max_access_m"] == 70.0

    # A longer access allowance puts U4 on the network: 600 + 400 + 50 = 1,050 m to B.
    far = create_plan(
        session,
        params=PlanParameters(
            **scope, distance="network", access_max_m=700, radius_m={"short": 1050}
        ),
    ).model_dump()
    assert ("B", "U4", 10.0, 1050.0, None) in _assignments(session, far["id"])


def test_noding_decides_whether_the_bridge_joins(town: tuple[Session, dict[str, int]]) -> None:
    session, ids = town
    scope = {
        "shelter_datasets": [ids["shelter_a"]],
        "population_datasets": [ids["units_ns"]],
        "radius_m": {"short": 2500.0},
        "distance": "network",
    }
    bridged = create_plan(
        session, params=PlanParameters(**scope, road_datasets=[ids["roads"]])
    ).model_dump()
    # 100 places: U2 (120 m) first, then 50 of U1 over the bridge (2,300 m).
    assert _assignments(session, bridged["id"]) == {
        ("A alone", "U2", 50.0, 120.0, None),
        ("A alone", "U1", 50.0, 2300.0, None),
        (None, "U1", 50.0, None, "over_capacity"),
        (None, "U4", 10.0, None, "out_of_reach"),
    }
    apart = create_plan(
        session, params=PlanParameters(**scope, road_datasets=[ids["roads_vertices"]])
    ).model_dump()
    assert _assignments(session, apart["id"]) == {
        ("A alone", "U2", 50.0, 120.0, None),
        (None, "U1", 100.0, None, "out_of_reach"),
        (None, "U4", 10.0, None, "out_of_reach"),
    }


def test_polygon_site_unit_inside_is_at_zero_and_never_shorter_than_straight(
    town: tuple[Session, dict[str, int]],
) -> None:
    session, ids = town
    scope = {"shelter_datasets": [ids["shelter_c"]], "population_datasets": [ids["units_c"]]}
    roads = create_plan(
        session, params=PlanParameters(**scope, distance="network", road_datasets=[ids["roads"]])
    ).model_dump()
    # C's access point is its south corner's road point (2600, 100), 50 m away.
    assert _assignments(session, roads["id"]) == {
        ("C", "U5", 20.0, 0.0, None),
        ("C", "U6", 30.0, 300.0, None),
    }
    straight = create_plan(session, params=PlanParameters(**scope)).model_dump()
    assert _assignments(session, straight["id"]) == {
        ("C", "U5", 20.0, 0.0, None),
        ("C", "U6", 30.0, round(200 / math.sqrt(2), 6), None),
    }


def test_suggest_counts_coverage_along_roads(town: tuple[Session, dict[str, int]]) -> None:
    session, ids = town
    scope = {
        "k": 1,
        "radius_m": 650.0,
        "demand": "all",
        "population_datasets": [ids["units_ns"]],
        "candidate_dataset": ids["shelters_ab"],
    }
    straight = suggest_sites(session, params=SuggestParameters(**scope)).model_dump()
    assert straight["gain"] == 150.0 and straight["sites"][0]["name"] == "A"  # U1 300, U2 20
    roads = suggest_sites(
        session,
        params=SuggestParameters(**scope, distance="network", road_datasets=[ids["roads"]]),
    ).model_dump()
    # Along the roads A reaches only U2 (120 m) and B nobody (U1 is 700 m away).
    assert roads["distance"] == "network"
    assert roads["gain"] == 50.0 and roads["sites"][0]["name"] == "A"


def test_network_without_roads_or_with_unknown_ones_is_refused(
    session: Session, town: tuple[Session, dict[str, int]]
) -> None:
    # The default test database has no road dataset.
    with pytest.raises(InvalidInput, match="cim import roads"):
        create_plan(session, params=PlanParameters(distance="network"))
    with pytest.raises(InvalidInput, match="cim import roads"):
        suggest_sites(session, params=SuggestParameters(distance="network", demand="all"))
    river_session, _ = town
    with pytest.raises(NotFound, match="987654"):
        create_plan(
            river_session, params=PlanParameters(distance="network", road_datasets=[987654])
        )


def _oracle(
    pieces: np.ndarray, units: np.ndarray, sites: np.ndarray, access_max: float
) -> dict[tuple[int, int], float]:
    """Every unit-site road distance by networkx: snap points split their piece for real."""
    network = shapely.MultiLineString(list(pieces))
    on_piece: dict[int, list[tuple[float, Any]]] = {}
    legs: dict[Any, float] = {}
    for role, points in (("unit", units), ("site", sites)):
        for k, point in enumerate(points):
            on_road = shapely.ops.nearest_points(point, network)[1]
            if point.distance(on_road) > access_max:
                continue
            which = min(range(len(pieces)), key=lambda i: pieces[i].distance(on_road))
            on_piece.setdefault(which, []).append((pieces[which].project(on_road), (role, k)))
            legs[(role, k)] = point.distance(on_road)
    graph = nx.Graph()
    for i, piece in enumerate(pieces):
        chain = [(0.0, piece.coords[0])]
        chain += sorted(on_piece.get(i, []), key=lambda item: item[0])
        chain += [(piece.length, piece.coords[-1])]
        for (t0, a), (t1, b) in itertools.pairwise(chain):
            old = graph.get_edge_data(a, b, {}).get("weight", math.inf)
            graph.add_edge(a, b, weight=min(old, t1 - t0))
    distances: dict[tuple[int, int], float] = {}
    for j in range(len(sites)):
        if ("site", j) not in legs:
            continue
        reach = nx.single_source_dijkstra_path_length(graph, ("site", j), weight="weight")
        for i in range(len(units)):
            if ("unit", i) in legs and ("unit", i) in reach:
                distances[(i, j)] = legs[("unit", i)] + reach[("unit", i)] + legs[("site", j)]
    return distances


def test_network_pairs_match_networkx_and_the_plan_objective_matches_an_lp() -> None:
    rng = np.random.default_rng(11)
    # A 2 km town of unnoded 200 m grid streets with a few gaps, 80 units and 6 shelters.
    lines = [shapely.LineString([(0, y), (2000, y)]) for y in range(0, 2001, 200)]
    lines += [shapely.LineString([(x, 0), (x, 2000)]) for x in range(100, 2000, 300)]
    pieces, _ = node_lines(np.array(lines, dtype=object), np.arange(len(lines)), "intersections")
    pieces = pieces[rng.random(len(pieces)) > 0.15]  # missing blocks make detours
    graph = graph_from_lines(pieces)
    units = rng.uniform(0, 2000, (80, 2))
    sites = rng.uniform(0, 2000, (6, 2))
    radius, access_max = 900.0, 120.0
    site_points = np.asarray(shapely.points(sites), dtype=object)
    found = network_pairs(graph, units, site_points, np.full(6, radius), access_max_m=access_max)
    ours = {
        (int(u), int(s)): float(d)
        for u, s, d in zip(found.unit, found.site, found.distance, strict=True)
    }
    expected = {
        pair: d
        for pair, d in _oracle(pieces, shapely.points(units), site_points, access_max).items()
        if d <= radius
    }
    assert ours.keys() == expected.keys()
    assert len(ours) > 50
    for pair, d in ours.items():
        assert d == pytest.approx(expected[pair], abs=1e-6)
        straight = math.dist(units[pair[0]], sites[pair[1]])
        assert d >= straight - 1e-9

    # The optimal split assignment on these pairs equals the two-phase LP (PuLP + CBC).
    demand = rng.integers(10, 60, 80).astype(float)
    capacity = rng.integers(100, 400, 6).astype(float)
    pairs = sorted(ours)
    problem = PairProblem(
        demand=demand,
        capacity=capacity,
        pair_unit=np.array([p[0] for p in pairs], dtype=np.int64),
        pair_shelter=np.array([p[1] for p in pairs], dtype=np.int64),
        pair_distance=np.array([ours[p] for p in pairs]),
    )
    solution = solve_split(problem)
    results: list[float] = []
    for phase in (1, 2):
        model = pulp.LpProblem("p", pulp.LpMaximize if phase == 1 else pulp.LpMinimize)
        x = {p: pulp.LpVariable(f"x_{p[0]}_{p[1]}", lowBound=0) for p in pairs}
        for i in range(80):
            model += pulp.lpSum(x[p] for p in pairs if p[0] == i) <= demand[i]
        for j in range(6):
            model += pulp.lpSum(x[p] for p in pairs if p[1] == j) <= capacity[j]
        if phase == 1:
            model += pulp.lpSum(x.values())
        else:
            model += pulp.lpSum(x[p] * ours[p] for p in pairs)
            model += pulp.lpSum(x.values()) >= results[0] - 1e-6
        model.solve(pulp.PULP_CBC_CMD(msg=False))
        results.append(float(pulp.value(model.objective)))
    assert solution.covered == pytest.approx(results[0], abs=1e-6)
    assert solution.person_distance == pytest.approx(results[1], rel=1e-6)

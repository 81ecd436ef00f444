"""GB 50289 clearance check: for each tested rule a pair just inside and one just outside."""

from __future__ import annotations

import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes.clearance import check_clearances, clearance_rules
from tests.cim.pipes_fixtures import N, S, hex_geom, make_dataset, write_network

EPS = 0.01


class Builder:
    def __init__(self) -> None:
        self.nodes: list[N] = []
        self.segments: list[S] = []

    def pipe(
        self,
        code: str,
        utility: str,
        a: tuple[float, float, float],
        b: tuple[float, float, float],
        diameter: float,
        pressure: str | None = None,
    ) -> None:
        self.nodes += [
            N(f"{code}.a", a[0], a[1], 10.0, utility),
            N(f"{code}.b", b[0], b[1], 10.0, utility),
        ]
        self.segments.append(
            S(
                code,
                f"{code}.a",
                f"{code}.b",
                utility,
                coords=[a, b],
                diameter_mm=diameter,
                pressure=pressure,
            )
        )

    def parallel(
        self,
        name: str,
        base: float,
        first: tuple[str, float, str | None],
        second: tuple[str, float, str | None],
        clear: float,
    ) -> None:
        """Two north-south pipes whose horizontal clear distance is ``clear``."""
        axis = clear + first[1] / 2000 + second[1] / 2000
        self.pipe(f"{name}1", first[0], (base, 0, 5), (base, 100, 5), first[1], first[2])
        self.pipe(
            f"{name}2", second[0], (base + axis, 0, 5), (base + axis, 100, 5), second[1], second[2]
        )

    def crossing(
        self,
        name: str,
        base: float,
        lower: tuple[str, float],
        upper: tuple[str, float],
        clear: float,
    ) -> None:
        """Lower pipe along x at z=5, upper along y, ``clear`` from lower top to upper bottom."""
        z_upper = 5 + lower[1] / 2000 + clear + upper[1] / 2000
        self.pipe(f"{name}L", lower[0], (base - 50, 50, 5), (base + 50, 50, 5), lower[1])
        self.pipe(f"{name}U", upper[0], (base, 0, z_upper), (base, 100, z_upper), upper[1])


def build(session: Session) -> int:
    b = Builder()
    cases = [
        ("js_small", ("PS", 400, None), ("JS", 200, None), 1.0),
        ("js_large", ("PS", 400, None), ("JS", 300, None), 1.5),
        ("gas_mb", ("PS", 400, None), ("RQ", 160, "中压B"), 1.2),
        ("gas_sha", ("RQ", 160, "次高压A"), ("PS", 600, None), 2.0),
        ("power", ("PS", 400, None), ("DL", 200, None), 0.5),
    ]
    base = 0.0
    for name, first, second, required in cases:
        b.parallel(f"{name}_in", base, first, second, required - EPS)
        b.parallel(f"{name}_out", base + 500, first, second, required + EPS)
        base += 1000
    b.crossing("v_psjs_in", base, ("PS", 400), ("JS", 200), 0.40 - EPS)
    b.crossing("v_psjs_out", base + 500, ("PS", 400), ("JS", 200), 0.40 + EPS)
    b.crossing("v_jsjs_in", base + 1000, ("JS", 300), ("JS", 200), 0.15 - EPS)
    b.crossing("v_jsjs_out", base + 1500, ("JS", 300), ("JS", 200), 0.15 + EPS)
    # building rule: PS DN400 west of a 20 m square footprint, inside and outside 2.5 m
    b.pipe(
        "bld_in",
        "PS",
        (base + 3000 - 2.5 - 0.2 + EPS, 0, 5),
        (base + 3000 - 2.5 - 0.2 + EPS, 100, 5),
        400,
    )
    b.pipe(
        "bld_out",
        "PS",
        (base + 3100 - 2.5 - 0.2 - EPS, 0, 5),
        (base + 3100 - 2.5 - 0.2 - EPS, 100, 5),
        400,
    )
    # two connected JS pipes meeting at a node are never a pair
    b.nodes += [N("t1", -500, 0), N("t2", -500, 100), N("t3", -499, 200)]
    b.segments += [S("t12", "t1", "t2", "JS"), S("t23", "t2", "t3", "JS")]
    dataset = make_dataset(session, "clearance")
    write_network(session, dataset, b.nodes, b.segments)
    ifc = make_dataset(session, "ifc", kind="ifc")
    for guid, x0 in (("BLD_A", base + 3000), ("BLD_B", base + 3100)):
        square = shapely.MultiPolygon([shapely.box(x0, 40, x0 + 20, 60)])
        session.execute(
            text(
                "INSERT INTO building (dataset_id, guid, name, footprint) VALUES (:d, :g, :g, :f)"
            ),
            {"d": ifc, "g": guid, "f": hex_geom(square)},
        )
    return dataset


def test_each_rule_flags_the_pair_just_inside_only(session: Session) -> None:
    dataset = build(session)
    answer = check_clearances(session, dataset_id=dataset).model_dump()
    found = {(v["a"]["code"], v["b"]["code"]): v for v in answer["violations"]}
    expected = {
        ("js_small_in1", "js_small_in2"): ("H419-PS-JS-S", 1.0),
        ("js_large_in1", "js_large_in2"): ("H419-PS-JS-L", 1.5),
        ("gas_mb_in1", "gas_mb_in2"): ("H419-PS-RQ-MB", 1.2),
        ("gas_sha_in1", "gas_sha_in2"): ("H419-PS-RQ-SHA", 2.0),
        ("power_in1", "power_in2"): ("H419-PS-DL", 0.5),
        ("v_psjs_inL", "v_psjs_inU"): ("V98-PS-JS", 0.40),
        ("v_jsjs_inL", "v_jsjs_inU"): ("V98-JS-JS", 0.15),
        ("bld_in", "BLD_A"): ("H419-PS-BLD", 2.5),
    }
    assert set(found) == set(expected)
    assert len(answer["violations"]) == answer["violation_count"] == len(expected)
    for pair, (rule, required) in expected.items():
        violation = found[pair]
        assert violation["rule"]["id"] == rule
        assert violation["required_m"] == required
        assert violation["actual_m"] == pytest.approx(required - EPS, abs=1e-6)
    assert found[("v_psjs_inL", "v_psjs_inU")]["kind"] == "vertical"
    assert len(found[("v_psjs_inL", "v_psjs_inU")]["location"]) == 3
    assert found[("bld_in", "BLD_A")]["b"]["layer"] == "building"
    assert answer["per_rule"]["H419-PS-JS-S"] == 1
    assert answer["unconfirmed_rules_used"] == ["V98-JS-JS", "V98-PS-JS"]
    assert found[("js_small_in1", "js_small_in2")]["rule"]["confirmed"] is True


def test_area_and_kind_filters(session: Session) -> None:
    dataset = build(session)
    area = {
        "type": "Polygon",
        "coordinates": [[[-10, -10], [10, -10], [10, 110], [-10, 110], [-10, -10]]],
    }
    answer = check_clearances(session, dataset_id=dataset, area=area).model_dump()
    assert [(v["a"]["code"], v["b"]["code"]) for v in answer["violations"]] == [
        ("js_small_in1", "js_small_in2")
    ]
    vertical = check_clearances(
        session, dataset_id=dataset, kinds=("vertical",), limit=1
    ).model_dump()
    assert vertical["violation_count"] == 2 and vertical["returned"] == 1 and vertical["truncated"]
    with pytest.raises(InvalidInput):
        check_clearances(session, dataset_id=dataset, kinds=("diagonal",))


def test_rule_file_names_a_source_for_every_rule() -> None:
    _, rules = clearance_rules()
    assert len(rules) >= 30
    assert all(rule.source and rule.description for rule in rules)
    confirmed = {r.id: r.required_m for r in rules if r.confirmed}
    assert confirmed == {
        "H419-PS-BLD": 2.5,
        "H419-PS-JS-S": 1.0,
        "H419-PS-JS-L": 1.5,
        "H419-PS-RQ-LOW": 1.0,
        "H419-PS-RQ-MB": 1.2,
        "H419-PS-RQ-MA": 1.2,
        "H419-PS-RQ-SHB": 1.5,
        "H419-PS-RQ-SHA": 2.0,
        "H419-PS-TX": 1.0,
        "H419-PS-DL": 0.5,
    }


def test_area_finds_a_pair_through_either_pipe(session: Session) -> None:
    """An area touching only the later-written pipe of a pair still finds the pair, for a
    parallel pair and for a crossing whose crossing point lies outside the area."""
    dataset = build(session)
    around_second = {
        "type": "Polygon",
        "coordinates": [[[1.0, 40], [2.0, 40], [2.0, 60], [1.0, 60], [1.0, 40]]],
    }
    answer = check_clearances(session, dataset_id=dataset, area=around_second).model_dump()
    assert [(v["a"]["code"], v["b"]["code"]) for v in answer["violations"]] == [
        ("js_small_in1", "js_small_in2")
    ]
    crossing_x = 5000.0  # v_psjs_in: the upper (later) pipe runs north along x = 5000
    south_end = {
        "type": "Polygon",
        "coordinates": [
            [
                [crossing_x - 1, 1],
                [crossing_x + 1, 1],
                [crossing_x + 1, 3],
                [crossing_x - 1, 3],
                [crossing_x - 1, 1],
            ]
        ],
    }
    vertical = check_clearances(
        session, dataset_id=dataset, area=south_end, kinds=("vertical",)
    ).model_dump()
    assert [(v["a"]["code"], v["b"]["code"]) for v in vertical["violations"]] == [
        ("v_psjs_inL", "v_psjs_inU")
    ]
    assert vertical["violations"][0]["location"][:2] == [crossing_x, 50.0]


def test_worst_violations_come_first_when_truncated(session: Session) -> None:
    dataset = build(session)
    everything = check_clearances(session, dataset_id=dataset).model_dump()
    keys = [
        (round(v["actual_m"] - v["required_m"], 6), v["a"]["id"]) for v in everything["violations"]
    ]
    assert keys == sorted(keys)
    two = check_clearances(session, dataset_id=dataset, limit=2).model_dump()
    assert two["violation_count"] == everything["violation_count"] and two["truncated"]
    assert two["violations"] == everything["violations"][:2]

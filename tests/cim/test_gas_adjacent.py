"""Adjacent-space risk (燃气相邻地下空间) on the hand-made street of ``gas_fixtures``: distances,
vertical relations, volumes and the ranking equal the values worked out by hand; the sensor
sites equal PuLP's optimum of the same covering problem built here; the alarm names the valves
the isolation service gives."""

from __future__ import annotations

import doctest
import math

import pulp
import pytest
import shapely
from sqlalchemy.orm import Session

from cim.errors import AuthenticationRequired, InvalidInput
from cim.services.gas.adjacent import adjacent_spaces
from cim.services.gas.alarm import gas_alarm
from cim.services.gas.models import AdjacentSpaceReport
from cim.services.gas.pressure import pressure_class
from cim.services.gas.risk import material_life
from cim.services.pipes.isolation import isolate_burst
from tests.cim.gas_fixtures import (
    AS_OF,
    EXPECTED,
    GAS_PIPES,
    WELLS,
    X0,
    Y0,
    Expected,
    GasStreet,
    write_gas_street,
)

RADIUS = 5.0


@pytest.fixture
def street(session: Session) -> GasStreet:
    return write_gas_street(session)


def hand_risk(e: Expected) -> float:
    """The documented formula, written out again: F_d x F_p x F_c x F_space x F_volume."""
    _, _, _, f_pressure, f_condition = GAS_PIPES[e.gas]
    f_distance = 1 - e.distance_m / (2 * RADIUS)
    f_volume = 1 + math.log10(1 + e.volume_m3) / 2
    return f_distance * f_pressure * f_condition * e.space_weight * f_volume


def test_spaces_distances_relations_and_ranking_equal_the_hand_values(
    session: Session, street: GasStreet
) -> None:
    report = adjacent_spaces(session, as_of_year=AS_OF)
    by_hand = sorted(EXPECTED, key=lambda e: -hand_risk(e))
    assert [s.code for s in report.spaces] == [e.code for e in by_hand]
    assert [s.rank for s in report.spaces] == list(range(1, len(EXPECTED) + 1))
    for space, e in zip(report.spaces, by_hand, strict=True):
        got = (space.layer, space.space_type, space.gas_pipe.code, space.distance_m)
        assert got == (e.layer, e.space_type, e.gas, e.distance_m), e.code
        assert (space.vertical_relation, space.vertical_gap_m) == (e.relation, e.gap_m), e.code
        assert space.volume_m3 == round(e.volume_m3, 3), e.code
        assert space.risk.score == round(hand_risk(e), 6), e.code
    assert report.space_count == 11 and report.gas_pipe_count == 5
    assert report.gas_length_m == 40 + 60 + 60 + 40 + 100
    assert report.buildings_without_basement_data == 1  # B2: within reach, nothing below ground
    assert report.counts_by_type == {
        "basement": 2, "drainage_well": 2, "heat_well": 1, "power_well": 2, "telecom_well": 2,
        "utility_tunnel": 1, "water_well": 1,
    }  # fmt: skip
    first = report.spaces[0]
    assert (first.code, first.gas_pipe.pressure_class, first.gas_pipe.year) == (
        "B3",
        "medium_a",
        1995,
    )
    assert any("unverified" in note for note in report.notes)
    assert any("1 gas pipes have no GB 50028 pressure class" in n for n in report.notes)


def test_map_has_gas_pipes_spaces_and_distance_lines(session: Session, street: GasStreet) -> None:
    report = adjacent_spaces(session, as_of_year=AS_OF)
    assert report.geojson is not None
    roles = [f["properties"]["role"] for f in report.geojson["features"]]
    assert (roles.count("gas_pipe"), roles.count("space"), roles.count("distance")) == (5, 11, 11)
    key = f"distance.pipe_node.{street.wells['W1']}"
    line = next(f for f in report.geojson["features"] if f.get("id") == key)
    assert line["geometry"] is not None
    coordinates = [list(xyz) for xyz in line["geometry"]["coordinates"]]
    assert coordinates == [[X0 + 20, Y0 + 2, 8.0], [X0 + 20, Y0, 8.9]]


def test_scopes_segment_point_area_and_hidden_classes(session: Session, street: GasStreet) -> None:
    near_v1b = ["B1", "W2", "W3"]  # by risk, hand values in EXPECTED
    one = adjacent_spaces(session, segment_id=street.gas_segments["V1b"], as_of_year=AS_OF)
    assert [s.code for s in one.spaces] == near_v1b and one.gas_pipe_count == 1
    picked = adjacent_spaces(session, point=(X0 + 70, Y0 - 0.5), as_of_year=AS_OF)
    assert [s.code for s in picked.spaces] == near_v1b
    south = shapely.box(X0 - 10, Y0 - 50, X0 + 210, Y0 + 30)
    area = adjacent_spaces(session, area=south.wkt, as_of_year=AS_OF, with_geojson=False)
    assert area.space_count == 10 and "W9" not in {s.code for s in area.spaces}
    limited = adjacent_spaces(session, limit=3, as_of_year=AS_OF)
    assert len(limited.spaces) == 3 and limited.truncated and limited.space_count == 11
    no_power = adjacent_spaces(session, hidden_utilities=frozenset({"DL"}), as_of_year=AS_OF)
    assert {"W1", "W10"}.isdisjoint(s.code for s in no_power.spaces)
    assert no_power.space_count == 9
    by_text = next(s for s in report_all(session).spaces if s.code == "W10")
    assert (by_text.kind, by_text.utility) == ("工作井", "DL")  # a well by its 附属物 text
    with pytest.raises(AuthenticationRequired):
        adjacent_spaces(session, hidden_utilities=frozenset({"RQ", "DL"}))
    with pytest.raises(InvalidInput, match="at most one"):
        adjacent_spaces(session, segment_id=street.gas_segments["V1b"], area=south.wkt)
    with pytest.raises(InvalidInput, match="not RQ gas"):
        adjacent_spaces(session, segment_id=street.tunnel_segments["T1"])
    with pytest.raises(InvalidInput, match="radius_m"):
        adjacent_spaces(session, radius_m=0)


def report_all(session: Session) -> AdjacentSpaceReport:
    return adjacent_spaces(session, as_of_year=AS_OF, with_geojson=False)


def pulp_mclp(k: int) -> tuple[float, list[float], list[list[int]]]:
    """The covering problem built independently: 10 m pieces of the straight gas pipes,
    weighted by length x F_pressure x F_condition, covered by spaces within 5 m; PuLP/CBC."""
    runs = {"aV1": (0, 40, 0), "V1b": (40, 100, 0), "bV2": (100, 160, 0), "V2c": (160, 200, 0)}
    runs["far"] = (0, 100, 60)
    pieces: list[shapely.LineString] = []
    weights: list[float] = []
    for code, (start, end, y) in runs.items():
        _, _, _, f_pressure, f_condition = GAS_PIPES[code]
        count = math.ceil((end - start) / 10)
        step = (end - start) / count
        for i in range(count):
            x = start + i * step
            pieces.append(shapely.LineString([(x, y), (x + step, y)]))
            weights.append(step * f_pressure * f_condition)
    sites = {code: shapely.Point(x, y) for code, (_, _, x, y, _) in WELLS.items()}
    sites |= {"T1": shapely.LineString([(140, -3.5), (140, -40)])}
    sites |= {"B1": shapely.box(60, 4, 80, 14), "B3": shapely.box(0, -9, 10, -5)}
    order = [e.code for e in EXPECTED]
    covers = [[j for j, c in enumerate(order) if sites[c].distance(p) <= RADIUS] for p in pieces]
    model = pulp.LpProblem("mclp", pulp.LpMaximize)
    pick = [pulp.LpVariable(f"pick{j}", cat="Binary") for j in range(len(order))]
    met = [pulp.LpVariable(f"met{i}", lowBound=0, upBound=1) for i in range(len(pieces))]
    model += pulp.lpSum(w * m for w, m in zip(weights, met, strict=True))
    for m, sites_covering in zip(met, covers, strict=True):
        model += m <= pulp.lpSum(pick[j] for j in sites_covering)
    model += pulp.lpSum(pick) == k
    model.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=0))
    return float(pulp.value(model.objective)), weights, covers


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_sensor_sites_equal_pulps_optimum(session: Session, street: GasStreet, k: int) -> None:
    report = adjacent_spaces(session, sensors=k, piece_m=10.0, as_of_year=AS_OF)
    assert report.sensors is not None and len(report.sensors.sites) == k
    optimum, weights, covers = pulp_mclp(k)
    assert report.sensors.covered_weight == pytest.approx(optimum, abs=1e-6)
    order = [e.code for e in EXPECTED]
    chosen = {order.index(s.code) for s in report.sensors.sites}
    covered = sum(w for w, c in zip(weights, covers, strict=True) if chosen & set(c))
    assert covered == pytest.approx(optimum, abs=1e-6)  # the sites named give that coverage
    assert report.sensors.total_weight == pytest.approx(sum(weights), abs=1e-6)


def test_alarm_lists_the_spaces_and_the_isolation_valves(
    session: Session, street: GasStreet
) -> None:
    leak = street.gas_segments["V1b"]
    alarm = gas_alarm(session, segment_id=leak, as_of_year=AS_OF)
    direct = isolate_burst(session, segment_id=leak)
    assert alarm.isolation is not None
    assert [v.code for v in alarm.isolation.valves_to_close] == ["V1", "V2"]
    assert alarm.isolation.valves_to_close == direct.valves_to_close
    assert [s.code for s in alarm.spaces] == ["B1", "W2", "W3"]
    stuck = street.gas_nodes["V2"]
    by_point = gas_alarm(session, point=(X0 + 70, Y0 + 0.4), failed_valve_ids=[stuck])
    assert by_point.isolation is not None
    expected = isolate_burst(session, segment_id=leak, failed_valve_ids=[stuck])
    assert by_point.isolation.valves_to_close == expected.valves_to_close
    assert [v.code for v in by_point.isolation.valves_to_close] == ["V1"]
    with pytest.raises(InvalidInput, match="exactly one"):
        gas_alarm(session)


def test_pressure_classes_and_material_lives() -> None:
    texts = ["低压", "中压B", "中压 A", "次高压B", "sub_high_a", "高压B", "3.0MPa", "0.005", "5kPa"]
    assert [pressure_class(t) for t in texts] == [
        "low", "medium_b", "medium_a", "sub_high_b", "sub_high_a", "high_b", "high_a", "low",
        "low",
    ]  # fmt: skip
    assert [pressure_class(t) for t in ["中压", "0.2", "0.21", "9 MPa", None]] == [
        None, "medium_b", "medium_a", None, None,
    ]  # fmt: skip
    assert [material_life(m) for m in ["钢", "G", "PE100", "ZT", "球墨铸铁", "?"]] == [
        30.0, 30.0, 40.0, 40.0, 40.0, 30.0,
    ]  # fmt: skip


def test_docstring_examples_hold() -> None:
    from cim.services.gas import pressure, risk

    for module in (pressure, risk):
        assert doctest.testmod(module).failed == 0, module.__name__

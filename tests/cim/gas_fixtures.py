"""A hand-made street for the gas adjacent-space tests: gas mains with valves, wells of other
classes at known distances and depths, a utility tunnel and three buildings.

Coordinates are metres from (X0, Y0) in the test SRID; every ground is at 10.0 m and every gas
pipe is DN200 with 1 m of cover, so its invert is 8.8, centre 8.9, top 9.0. The expected
distances, vertical relations and volumes are listed beside each space in ``EXPECTED``.

    y=60   f0 ----------------- far (次高压A, steel 2000) ---------- f1      W9 TX (50, 63)
    y=0    a --aV1-- V1 ----V1b---- b ----bV2---- V2 --V2c-- c
           0         40             100           160        200
"""

from __future__ import annotations

from dataclasses import dataclass

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.rows import NodeRow, copy_nodes
from cim.db.models import Building
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.conftest import TEST_SRID

X0, Y0 = 534_000.0, 3_380_000.0
GROUND = 10.0
AS_OF = 2025
GAS_PIPES = {
    # code: (pressure text, material, year, F_pressure, F_condition) - factors by hand
    "aV1": ("中压A", "钢", 1995, 2.0, 1 + 30 / 30),
    "V1b": ("中压B", "PE", 2010, 1.5, 1 + 15 / 40),
    "bV2": ("0.3MPa", "PE", 2015, 2.0, 1 + 10 / 40),
    "V2c": (None, None, None, 1.5, 2.0),
    "far": ("次高压A", "钢", 2000, 3.0, 1 + 25 / 30),
}


@dataclass(frozen=True)
class Expected:
    """A space as the answer must give it (distances in m, volume in m³, weights by hand)."""

    layer: str
    code: str
    space_type: str
    gas: str
    distance_m: float
    relation: str
    gap_m: float | None
    volume_m3: float
    space_weight: float


# well code -> (utility, kind, x, y, bottom_z or None)
WELLS = {
    "W1": ("DL", "manhole", 20.0, 2.0, 8.0),
    "W2": ("TX", "handhole", 70.0, -1.5, 9.2),
    "W3": ("PS", "manhole", 100.0, 3.0, None),  # as near V1b as bV2: the lower id wins
    "W4": ("RL", "manhole", 130.0, -4.0, 8.9),
    "W5": ("JS", "valve", 180.0, 1.0, 8.5),
    "W6": ("DL", "manhole", 120.0, 6.0, 8.0),  # 6 m away: outside the 5 m radius
    "W7": ("PS", "junction", 10.0, -2.5, 7.5),  # a SWMM manhole: a junction with a bottom
    "W7a": ("PS", "junction", 60.0, 1.0, None),  # a plain junction: not a space
    "W9": ("TX", "manhole", 50.0, 63.0, 8.0),
    "W10": ("DL", "junction", 190.0, -2.0, 8.0),  # 附属物 工作井: a well by its text
}
APPURTENANCES = {"W10": "工作井", "W7a": "直线点"}
EXPECTED = [
    Expected("pipe_node", "W1", "power_well", "aV1", 2.0, "below", 0.8, 1.0 * 2.0, 1.5),
    Expected("pipe_node", "W2", "telecom_well", "V1b", 1.5, "above", 0.2, 0.5 * 0.8, 1.3),
    Expected("pipe_node", "W3", "drainage_well", "V1b", 3.0, "below", 0.8, 1.0 * 2.0, 1.3),
    Expected("pipe_node", "W4", "heat_well", "bV2", 4.0, "level", 0.0, 1.0 * 1.1, 1.2),
    Expected("pipe_node", "W5", "water_well", "V2c", 1.0, "below", 0.3, 1.5 * 1.5, 1.0),
    Expected("pipe_node", "W7", "drainage_well", "aV1", 2.5, "below", 1.3, 1.0 * 2.5, 1.3),
    Expected("pipe_node", "W9", "telecom_well", "far", 3.0, "below", 0.8, 1.0 * 2.0, 1.3),
    Expected("pipe_node", "W10", "power_well", "V2c", 2.0, "below", 0.8, 1.0 * 2.0, 1.5),
    # the tunnel: 2 m x 2.5 m x 36.5 m, invert 5.0
    Expected("pipe_segment", "T1", "utility_tunnel", "bV2", 3.5, "below", 3.8, 182.5, 1.5),
    Expected("building", "B1", "basement", "V1b", 4.0, "below", 4.8, 20 * 10 * 6.0, 2.0),
    Expected("building", "B3", "basement", "aV1", 5.0, "below", 4.8, 10 * 4 * 6.0, 2.0),
]  # fmt: skip


@dataclass(frozen=True)
class GasStreet:
    gas: int
    others: int
    tunnel: int
    gas_nodes: dict[str, int]
    gas_segments: dict[str, int]
    wells: dict[str, int]
    tunnel_segments: dict[str, int]
    buildings: dict[str, int]


def _gas_network() -> tuple[list[N], list[S]]:
    def node(code: str, x: float, y: float = 0.0, **more: str) -> N:
        return N(code, X0 + x, Y0 + y, GROUND, "RQ", **more)

    nodes = [
        node("a", 0),
        node("V1", 40, kind="valve", valve_state="open"),
        node("b", 100),
        node("V2", 160, kind="valve", valve_state="open"),
        node("c", 200),
        node("f0", 0, 60),
        node("f1", 100, 60),
        node("W8", 30, 1, kind="manhole"),  # a gas chamber: gas itself is not a space
    ]
    ends = {"aV1": ("a", "V1"), "V1b": ("V1", "b"), "bV2": ("b", "V2"), "V2c": ("V2", "c")}
    ends["far"] = ("f0", "f1")
    segments = [
        S(code, start, end, "RQ", diameter_mm=200.0, pressure=p, material=m, year=y)
        for code, (start, end) in ends.items()
        for p, m, y, _, _ in [GAS_PIPES[code]]
    ]
    return nodes, segments


def _buildings(session: Session) -> dict[str, int]:
    dataset = make_dataset(session, "blocks", kind="buildings")
    rows = {
        "B1": ((60, 4, 80, 14), 4.0, {}),  # an IFC-like model reaching 6 m below ground
        "B2": ((150, -10, 170, -4.5), GROUND, {}),  # nothing below ground known
        "B3": ((0, -9, 10, -5), None, {"storeysBelowGround": 2}),  # CityJSON attribute
    }
    ids = {}
    for code, ((x1, y1, x2, y2), base_z, attrs) in rows.items():
        box = shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)
        building = Building(
            dataset_id=dataset,
            guid=f"guid-{code}",
            name=code,
            footprint=from_shape(shapely.MultiPolygon([box]), srid=TEST_SRID),
            base_z=base_z,
            top_z=GROUND + 20.0,
            attrs=attrs,
        )
        session.add(building)
        session.flush()
        ids[code] = building.id
    return ids


def write_gas_street(session: Session) -> GasStreet:
    """Write the street (three pipe datasets and a buildings dataset); ids by code."""
    gas = make_dataset(session, "gas")
    gas_nodes, gas_segments = write_network(session, gas, *_gas_network())
    others = make_dataset(session, "wells")
    wells = copy_nodes(
        session,
        dataset_id=others,
        srid=TEST_SRID,
        nodes=[
            NodeRow(code, X0 + x, Y0 + y, GROUND, utility=u, kind=k, ground_z=GROUND, bottom_z=b)
            for code, (u, k, x, y, b) in WELLS.items()
        ],
    )
    for code, text_ in APPURTENANCES.items():
        session.execute(
            text("UPDATE pipe_node SET appurtenance = :a WHERE id = :id"),
            {"a": text_, "id": wells[code]},
        )
    tunnel = make_dataset(session, "tunnel")
    _, tunnel_segments = write_network(
        session,
        tunnel,
        [N("t0", X0 + 140, Y0 - 3.5, GROUND, "QT"), N("t1", X0 + 140, Y0 - 40, GROUND, "QT")],
        [
            S("T1", "t0", "t1", "QT", subclass="ZH", section_shape="rectangular",
              diameter_mm=None, width_mm=2000.0, height_mm=2500.0,
              start_invert_z=5.0, end_invert_z=5.0)
        ],
    )  # fmt: skip
    session.flush()
    return GasStreet(
        gas, others, tunnel, gas_nodes, gas_segments, wells, tunnel_segments, _buildings(session)
    )

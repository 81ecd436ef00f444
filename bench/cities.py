"""Generated cities (bench/generator.py) written into the database as datasets, for benches.

``load_pipe_network``: the pipes of a city as one ``pipes`` dataset, optionally with the
street mains tied into one meshed grid (bench/analysis.py, bench/load.py).
``load_tiles_city``: its buildings as IFC-like elements plus its pipes (bench/tiles.py,
bench/tiles_dask.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import chain
from typing import Any

import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.generator import DEPTHS, Node, Segment, SyntheticCity
from bench.rows import NodeRow, SegmentRow, copy_elements, copy_nodes, copy_segments
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import

SRID = 4547  # the generator's CRS (its origin is in EPSG:4547)


def load_pipe_network(
    engine: Engine, city: SyntheticCity, *, tie_streets: bool, name: str
) -> tuple[int, int]:
    """Write the city's pipes as one dataset; returns (dataset id, segment count).

    ``tie_streets`` ties each street's main to the crossing street's main at every
    intersection by a short tee, so that the network is one meshed grid.
    """
    nodes, segments = city.pipes()
    ties = street_ties(city, nodes) if tie_streets else []
    started = time.perf_counter()

    def write(session: Session, dataset: Any) -> WriteOutcome:
        node_rows = [
            NodeRow(
                n.code, n.x, n.y, n.ground_z, utility=n.utility, kind=n.kind,
                ground_z=n.ground_z, valve_state="open" if n.kind == "valve" else None,
            )
            for n in nodes
        ]  # fmt: skip
        node_ids = copy_nodes(session, dataset_id=dataset.id, srid=SRID, nodes=node_rows)
        rows = chain(_main_rows(segments), _tie_rows(ties, nodes))
        count = copy_segments(
            session, dataset_id=dataset.id, srid=SRID, segments=rows, node_ids=node_ids
        )
        return WriteOutcome(counts={"pipe_node": len(nodes), "pipe_segment": count})

    source = DatasetSource(
        kind="pipes", name=name, source_name="generated", source_sha256=f"{name}-{time.time_ns()}"
    )
    result = run_import(engine, source=source, write=write)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE pipe_node; ANALYZE pipe_segment"))
    total = len(segments) + len(ties)
    print(f"loaded {name}: {total:,} segments in {time.perf_counter() - started:.1f} s", flush=True)
    return int(result.dataset.id), total


def street_ties(city: SyntheticCity, nodes: list[Node]) -> list[tuple[str, str, str]]:
    """(tee code, node on a vertical street's main, node on the crossing horizontal main)."""
    by_xy: dict[tuple[str, int, int], str] = {}
    step = city.pitch / city.nodes_per_street
    for n in nodes:
        street = n.code[len(n.utility)]
        i = round((n.x - city.origin[0]) / step)
        j = round((n.y - city.origin[1]) / step)
        by_xy[(n.utility + street, i, j)] = n.code
    ties = []
    for (key, i, j), code in by_xy.items():
        if key.endswith("V") and (key[:-1] + "H", i, j) in by_xy:
            ties.append((f"{code}T", code, by_xy[(key[:-1] + "H", i, j)]))
    return ties


def _main_rows(segments: list[Segment]) -> Iterator[SegmentRow]:
    """The generated segments; their coordinates are inverts, the centreline is h/2 above."""
    for s in segments:
        (xa, ya, za), (xb, yb, zb) = s.coords
        h = s.diameter_mm / 1000
        line = shapely.LineString([(xa, ya, za + h / 2), (xb, yb, zb + h / 2)])
        yield SegmentRow(
            s.code, s.start, s.end, line, utility=s.utility,
            start_invert_z=za, end_invert_z=zb, start_top_z=za + h, end_top_z=zb + h,
            diameter_mm=s.diameter_mm, material=s.material, year=s.year, length_m=line.length,
        )  # fmt: skip


def _tie_rows(ties: list[tuple[str, str, str]], nodes: list[Node]) -> Iterator[SegmentRow]:
    """The tees of :func:`street_ties`: DN200 ductile iron, 1.5 m below ground."""
    xy = {n.code: (n.x, n.y, n.ground_z) for n in nodes}
    for code, a, b in ties:
        (xa, ya, ga), (xb, yb, gb) = xy[a], xy[b]
        za, zb = ga - 1.5, gb - 1.5
        line = shapely.LineString([(xa, ya, za + 0.1), (xb, yb, zb + 0.1)])
        yield SegmentRow(
            code, a, b, line, utility="JS",
            start_invert_z=za, end_invert_z=zb, start_top_z=za + 0.2, end_top_z=zb + 0.2,
            diameter_mm=200, material="DI", year=2000, length_m=line.length,
        )  # fmt: skip


def load_tiles_city(engine: Engine, city: SyntheticCity) -> tuple[int, int]:
    """Write the city's buildings (as elements) and pipes; returns (elements, pipe rows)."""
    stamp = str(time.time_ns())
    run_import(
        engine,
        source=DatasetSource(
            kind="ifc", name="bench city", source_name="gen", source_sha256="b" + stamp
        ),
        write=lambda session, dataset: _write_elements(session, dataset, city),
    )
    run_import(
        engine,
        source=DatasetSource(
            kind="pipes", name="bench pipes", source_name="gen", source_sha256="p" + stamp
        ),
        write=lambda session, dataset: _write_pipes(session, dataset, city),
    )
    return city.building_count * 5, 0


def _write_elements(session: Session, dataset: Any, city: SyntheticCity) -> WriteOutcome:
    count = copy_elements(
        session,
        dataset_id=dataset.id,
        srid=SRID,
        buildings=city.buildings(),
        name=lambda building, cls: f"{building.code} {cls}",
    )
    return WriteOutcome(counts={"building_element": count})


def _write_pipes(session: Session, dataset: Any, city: SyntheticCity) -> WriteOutcome:
    nodes, segments = city.pipes()
    node_rows = [
        NodeRow(
            n.code, n.x, n.y, n.ground_z, utility=n.utility, kind=n.kind, ground_z=n.ground_z,
            bottom_z=n.ground_z - DEPTHS["PS"] - 1.5 if n.kind == "manhole" else None,
        )
        for n in nodes
    ]  # fmt: skip
    node_ids = copy_nodes(session, dataset_id=dataset.id, srid=SRID, nodes=node_rows)
    rows = (
        SegmentRow(
            s.code, s.start, s.end, shapely.LineString(s.coords), utility=s.utility,
            diameter_mm=s.diameter_mm, material=s.material, year=s.year,
        )
        for s in segments
    )  # fmt: skip
    copy_segments(session, dataset_id=dataset.id, srid=SRID, segments=rows, node_ids=node_ids)
    return WriteOutcome(counts={"pipe_node": len(nodes), "pipe_segment": len(segments)})

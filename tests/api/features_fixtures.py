"""A small, committed city for the API tests: pipes of three classes, buildings, shelters.

Rows are inserted through the ORM in storage SRID 4547 near Wuhan; every count the tests assert
is computed here, so the tests compare what the API serves with what was inserted.
"""

from __future__ import annotations

from dataclasses import dataclass

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.db.models import (
    Building,
    Dataset,
    HazardZone,
    PipeNode,
    PipeSegment,
    PopulationUnit,
    Shelter,
)

SRID = 4547
X0, Y0 = 534_000.0, 3_380_000.0
CLASSES = {"JS": 12, "PS": 8, "RQ": 5}
"""Segments per utility class; RQ (gas) is sensitive by default."""


@dataclass(frozen=True)
class City:
    dataset_id: int
    segments: dict[str, int]
    nodes: int
    buildings: int
    shelters: int
    population_units: int
    hazard_zones: int


def _g(geom: shapely.Geometry) -> object:
    return from_shape(geom, srid=SRID)


def insert_city(engine: Engine) -> City:
    """Insert and commit the fixture city; ``clean_tables`` deletes it (cascade)."""
    with Session(engine) as session, session.begin():
        dataset = Dataset(
            kind="pipes",
            name="api-fixture",
            source_name="fixture",
            source_sha256="f" * 64,
            status="ready",
        )
        session.add(dataset)
        session.flush()
        nodes = 0
        for row, (utility, count) in enumerate(CLASSES.items()):
            y = Y0 + row * 10.0
            previous = None
            for i in range(count + 1):
                node = PipeNode(
                    dataset_id=dataset.id,
                    code=f"{utility}-N{i}",
                    utility=utility,
                    kind="junction",
                    geom=_g(shapely.Point(X0 + i * 20.0, y, 20.0)),
                    ground_z=20.0,
                )
                session.add(node)
                session.flush()
                nodes += 1
                if previous is not None:
                    session.add(
                        PipeSegment(
                            dataset_id=dataset.id,
                            code=f"{utility}-{i:03d}",
                            utility=utility,
                            start_node_id=previous.id,
                            end_node_id=node.id,
                            geom=_g(
                                shapely.LineString(
                                    [
                                        (X0 + (i - 1) * 20.0, y, 18.5),
                                        (X0 + i * 20.0, y, 18.0 - i * 0.01),
                                    ]
                                )
                            ),
                            diameter_mm=100.0 * (1 + i % 4),
                            material="PE" if i % 2 else "DI",
                            length_m=20.0,
                            year=2000 + i,
                        )
                    )
                previous = node
        for i in range(3):
            session.add(
                Building(
                    dataset_id=dataset.id,
                    guid=f"B{i}",
                    name=f"Block {i}",
                    footprint=_g(
                        shapely.MultiPolygon(
                            [shapely.box(X0 + i * 50, Y0 - 80, X0 + i * 50 + 30, Y0 - 50)]
                        )
                    ),
                    base_z=20.0,
                    top_z=50.0 + i,
                )
            )
        for i, level in enumerate(("emergency", "short")):
            session.add(
                Shelter(
                    dataset_id=dataset.id,
                    name=f"Park {i}",
                    level=level,
                    geom=_g(shapely.box(X0 + i * 100, Y0 + 100, X0 + i * 100 + 40, Y0 + 140)),
                    effective_area=1600.0,
                    capacity=800.0,
                )
            )
        for i in range(4):
            session.add(
                PopulationUnit(
                    dataset_id=dataset.id,
                    code=f"U{i}",
                    population=100.0 * (i + 1),
                    geom=_g(shapely.Point(X0 + i * 30, Y0 + 60)),
                )
            )
        session.add(
            HazardZone(
                dataset_id=dataset.id,
                kind="flood",
                severity="high",
                geom=_g(shapely.MultiPolygon([shapely.box(X0 - 50, Y0 - 50, X0, Y0)])),
            )
        )
        dataset_id = dataset.id
    return City(
        dataset_id=dataset_id,
        segments=dict(CLASSES),
        nodes=nodes,
        buildings=3,
        shelters=2,
        population_units=4,
        hazard_zones=1,
    )

"""Shelter plans on the real Cambridge MA data: conservation, capacity, radius, hazards, zones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.shelters.plan import PlanParameters, create_plan, latest_plan_id, plan_summary
from cim.services.shelters.zones import uncovered_features, zone_features

TOTAL_POPULATION = 101_355.0  # sum of POP_LAB over the 886 blocks


@pytest.fixture
def cambridge(cambridge_engine: Engine) -> Iterator[Session]:
    """A session on the Cambridge database whose plans are rolled back after the test."""
    with cambridge_engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


def _rows(session: Session, sql: str, **bind: Any) -> list[Any]:
    return list(session.execute(text(sql), bind).all())


def test_population_is_conserved_per_unit_and_in_sum(cambridge: Session) -> None:
    plan = create_plan(cambridge, params=PlanParameters(name="default")).model_dump()
    stats = plan["stats"]
    assert stats["population"] == TOTAL_POPULATION
    assert stats["covered"] + stats["uncovered"] == pytest.approx(TOTAL_POPULATION, abs=1e-6)
    assert sum(stats["uncovered_by_reason"].values()) == pytest.approx(stats["uncovered"])
    per_unit = _rows(
        cambridge,
        """SELECT u.id, u.population, coalesce(sum(a.persons), 0)
           FROM population_unit u LEFT JOIN shelter_assignment a
             ON a.unit_id = u.id AND a.plan_id = :plan GROUP BY u.id""",
        plan=plan["id"],
    )
    assert len(per_unit) == 886
    for _, population, persons in per_unit:
        assert persons == pytest.approx(population, abs=1e-6)


def test_no_shelter_over_capacity_and_none_beyond_its_radius(cambridge: Session) -> None:
    plan = create_plan(cambridge, params=PlanParameters(radius_m={"short": 800.0})).model_dump()
    loads = _rows(
        cambridge,
        """SELECT s.id, s.capacity, sum(a.persons) FROM shelter_assignment a
           JOIN shelter s ON s.id = a.shelter_id WHERE a.plan_id = :plan
           GROUP BY s.id, s.capacity""",
        plan=plan["id"],
    )
    assert loads and all(load <= capacity + 1e-6 for _, capacity, load in loads)
    # Capacity is far below the population, so every usable shelter is filled to the brim.
    assert all(load == pytest.approx(capacity) for _, capacity, load in loads)
    farthest = _rows(
        cambridge,
        """SELECT max(ST_Distance(ST_PointOnSurface(u.geom), s.geom)) FROM shelter_assignment a
           JOIN shelter s ON s.id = a.shelter_id JOIN population_unit u ON u.id = a.unit_id
           WHERE a.plan_id = :plan""",
        plan=plan["id"],
    )[0][0]
    assert 0 < farthest <= 800.0
    assert plan["stats"]["max_distance_m"] == pytest.approx(farthest)


def test_no_usable_shelter_inside_an_excluded_hazard(cambridge: Session) -> None:
    in_flood = {
        r[0]
        for r in _rows(
            cambridge,
            """SELECT DISTINCT s.id FROM shelter s JOIN hazard_zone h
               ON ST_Intersects(s.geom, h.geom) WHERE h.kind = 'flood'""",
        )
    }
    # Make the check bite: move one shelter into a flood zone inside this test's transaction.
    moved = _rows(cambridge, "SELECT id FROM shelter WHERE capacity IS NOT NULL ORDER BY id")[0][0]
    cambridge.execute(
        text("""UPDATE shelter SET geom = (SELECT ST_PointOnSurface(geom) FROM hazard_zone
                 ORDER BY ST_Area(geom) DESC LIMIT 1) WHERE id = :id"""),
        {"id": moved},
    )
    in_flood.add(moved)
    plan = create_plan(cambridge, params=PlanParameters()).model_dump()
    used = {
        r[0]
        for r in _rows(
            cambridge,
            "SELECT DISTINCT shelter_id FROM shelter_assignment "
            "WHERE plan_id = :p AND shelter_id IS NOT NULL",
            p=plan["id"],
        )
    }
    assert used and not (used & in_flood)
    unusable = plan["stats"]["unusable_shelters"]
    assert unusable[str(moved)]["reason"] == "in_hazard_zone"
    # Units whose only shelters within 1,000 m are in a flood zone: "in_hazard_zone", and
    # nobody else. Counted independently in SQL.
    expected = _rows(
        cambridge,
        """SELECT coalesce(sum(u.population), 0) FROM population_unit u
           WHERE EXISTS (SELECT 1 FROM shelter s WHERE s.id = ANY(:flooded)
                           AND ST_DWithin(ST_PointOnSurface(u.geom), s.geom, 1000))
             AND NOT EXISTS (SELECT 1 FROM shelter s WHERE NOT s.id = ANY(:flooded)
                           AND s.capacity IS NOT NULL
                           AND ST_DWithin(ST_PointOnSurface(u.geom), s.geom, 1000))""",
        flooded=sorted(in_flood),
    )[0][0]
    assert expected > 0
    assert plan["stats"]["uncovered_by_reason"]["in_hazard_zone"] == pytest.approx(expected)
    # Without exclusion the moved shelter is used again.
    free = create_plan(cambridge, params=PlanParameters(exclude_hazards=[])).model_dump()
    assert moved in {s["shelter_id"] for s in free["shelters"] if s["population"] > 0}


def test_reasons_distinguish_reach_and_capacity(cambridge: Session) -> None:
    plan = create_plan(cambridge, params=PlanParameters(radius_m={"short": 300.0})).model_dump()
    reasons = plan["stats"]["uncovered_by_reason"]
    assert reasons["out_of_reach"] > 0 and reasons["over_capacity"] > 0
    # An out-of-reach unit really has no usable shelter within 300 m.
    unit = _rows(
        cambridge,
        """SELECT a.unit_id FROM shelter_assignment a WHERE a.plan_id = :p
           AND a.reason = 'out_of_reach' LIMIT 1""",
        p=plan["id"],
    )[0][0]
    near = _rows(
        cambridge,
        """SELECT count(*) FROM shelter s, population_unit u WHERE u.id = :u
           AND ST_DWithin(ST_PointOnSurface(u.geom), s.geom, 300) AND s.capacity IS NOT NULL""",
        u=unit,
    )[0][0]
    assert near == 0


def test_zones_are_disjoint_unions_of_assigned_units(cambridge: Session) -> None:
    plan = create_plan(cambridge, params=PlanParameters()).model_dump()
    zones = zone_features(cambridge, plan_id=plan["id"]).model_dump()
    geoms = [shapely.geometry.shape(f["geometry"]) for f in zones["features"]]
    assert len(geoms) == plan["stats"]["usable_shelters"]
    nonempty = [g for g in geoms if not g.is_empty]
    for i, a in enumerate(nonempty):
        for b in nonempty[i + 1 :]:
            assert a.intersection(b).area < 1e-9  # degrees²: only shared edges
    ratios = [f["properties"]["load_ratio"] for f in zones["features"]]
    assert all(0 <= r <= 1 + 1e-9 for r in ratios)
    # Zone area (storage CRS) equals the area of the units (or unit slices) it serves.
    for shelter in plan["shelters"]:
        served = _rows(
            cambridge,
            """SELECT coalesce(sum(ST_Area(u.geom) * a.persons / u.population), 0)
               FROM shelter_assignment a JOIN population_unit u ON u.id = a.unit_id
               WHERE a.plan_id = :p AND a.shelter_id = :s""",
            p=plan["id"],
            s=shelter["shelter_id"],
        )[0][0]
        assert shelter["zone_area_m2"] == pytest.approx(served, rel=1e-3, abs=1.0)
    uncovered = uncovered_features(cambridge, plan_id=plan["id"]).model_dump()
    assert sum(f["properties"]["uncovered"] for f in uncovered["features"]) == pytest.approx(
        plan["stats"]["uncovered"]
    )
    assert latest_plan_id(cambridge) == plan["id"]


def test_whole_units_are_never_split(cambridge: Session) -> None:
    plan = create_plan(
        cambridge, params=PlanParameters(split_units=False, time_limit_s=4)
    ).model_dump()
    assert plan["stats"]["split_units"] == 0
    split = _rows(
        cambridge,
        """SELECT unit_id FROM shelter_assignment WHERE plan_id = :p
           GROUP BY unit_id HAVING count(*) > 1""",
        p=plan["id"],
    )
    assert split == []


def test_bad_parameters_are_refused(cambridge: Session) -> None:
    with pytest.raises(InvalidInput):
        create_plan(cambridge, params=PlanParameters(radius_m={"nowhere": 10.0}))
    with pytest.raises(NotFound):
        create_plan(cambridge, params=PlanParameters(shelter_datasets=[987654]))
    with pytest.raises(NotFound):
        plan_summary(cambridge, plan_id=987654)

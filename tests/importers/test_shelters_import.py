"""``cim import shelters|population|hazards``: Cambridge, Tokyo (Japanese fields), GPKG, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from cim.errors import InvalidInput, UnsupportedCRS
from importers.shelters import import_population, import_shelters
from tests.cli_support import run_cim
from tests.conftest import cli_env, migrated_database
from tests.shelter_fixtures import MAPPINGS, sample


def _scalar(engine: Engine, sql: str, **bind: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), bind).scalar_one()


def test_cambridge_counts_capacity_and_flood_zones(cambridge_engine: Engine) -> None:
    with cambridge_engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT kind, counts FROM dataset")).all())
    assert counts["shelters"]["shelters"] == 15
    assert counts["shelters"]["capacity"] == 10_457.0  # 14 given capacities; Gately has none
    assert counts["population"] == {"units": 886, "population": 101_355.0}
    assert counts["hazards"]["by_kind"] == {"flood": 21}
    gately = _scalar(cambridge_engine, "SELECT capacity FROM shelter WHERE name LIKE 'Gately%'")
    assert gately is None
    assert _scalar(cambridge_engine, "SELECT count(*) FROM shelter WHERE level = 'short'") == 15
    assert _scalar(cambridge_engine, "SELECT count(*) FROM hazard_zone WHERE severity = 'AE'") == 21
    assert _scalar(cambridge_engine, "SELECT bool_and(ST_IsValid(geom)) FROM population_unit")
    # Stored in Massachusetts Mainland metres, not degrees.
    x = _scalar(cambridge_engine, "SELECT min(ST_X(geom)) FROM shelter")
    assert 225_000 < float(x) < 240_000  # type: ignore[arg-type]


def test_same_file_again_is_a_no_op(cambridge_engine: Engine) -> None:
    again = import_shelters(
        cambridge_engine,
        sample("cambridge_EmergencyShelters.geojson"),
        mapping=MAPPINGS / "cambridge_shelters.yaml",
    )
    assert again.created is False
    assert _scalar(cambridge_engine, "SELECT count(*) FROM shelter") == 15


@pytest.fixture(scope="module")
def tokyo_engine(server_url: str) -> Iterator[Engine]:
    # JGD2011 Japan Plane Rectangular IX
    engine = make_engine(migrated_database(server_url, "cim_test_tokyo", srid=6677))
    yield engine
    engine.dispose()


def test_tokyo_japanese_fields_and_hazard_flags(tokyo_engine: Engine) -> None:
    result = import_shelters(
        tokyo_engine,
        sample("jp_chiyoda_131016_emergency.geojson"),
        mapping=MAPPINGS / "tokyo_emergency_shelters.yaml",
    )
    assert result.dataset.counts["shelters"] == 28
    assert result.warnings and "neither capacity nor effective area" in result.warnings[0]
    with tokyo_engine.connect() as conn:
        level, attrs = conn.execute(
            text("SELECT level, attrs FROM shelter WHERE name = '神田一橋中学校'")
        ).one()
    assert level == "emergency"
    assert attrs["suitable_for"] == ["flood", "landslide", "earthquake", "inland_flood"]
    assert attrs["住所"] == "東京都千代田区一ツ橋2-6-14"
    evacuation = import_shelters(
        tokyo_engine,
        sample("jp_shinjuku_131041_evacuation.geojson"),
        mapping=MAPPINGS / "tokyo_evacuation_shelters.yaml",
    )
    assert evacuation.dataset.counts["by_level"] == {"short": 129}


def test_gpkg_effective_area_gives_capacity(tokyo_engine: Engine, tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {
            "名称": ["公园A", "广场B"],
            "类型": ["中期固定避难场所", "紧急"],
            "有效面积": [9000.0, 500.0],
        },
        geometry=[shapely.box(139.70, 35.69, 139.701, 35.691), shapely.Point(139.71, 35.69)],
        crs="EPSG:4326",
    )
    path = tmp_path / "sites.gpkg"
    frame.to_file(path, driver="GPKG")
    result = import_shelters(tokyo_engine, path)
    assert result.dataset.counts["by_level"] == {"medium": 1, "emergency": 1}
    with tokyo_engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("SELECT name, capacity FROM shelter WHERE dataset_id = :d"),
                {"d": result.dataset.id},
            ).all()
        )
    assert rows == {"公园A": 3000.0, "广场B": 1000.0}  # 9000 / 3.0 and 500 / 0.5 m² per person


def test_bad_input_writes_nothing(tokyo_engine: Engine, tmp_path: Path) -> None:
    before = _scalar(tokyo_engine, "SELECT count(*) FROM dataset")
    bad_mapping = tmp_path / "bad.yaml"
    bad_mapping.write_text("population: NO_SUCH_FIELD\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="NO_SUCH_FIELD"):
        import_population(
            tokyo_engine, sample("jp_chiyoda_131016_emergency.geojson"), mapping=bad_mapping
        )
    with pytest.raises(InvalidInput, match="level"):
        import_shelters(tokyo_engine, sample("jp_chiyoda_131016_emergency.geojson"))
    csv_file = tmp_path / "pop.csv"
    csv_file.write_text("lon,lat,pop\n139.7,35.7,12\n139.7,35.7,many\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="row 2"):
        import_population(tokyo_engine, csv_file)
    with pytest.raises(UnsupportedCRS):
        import_population(tokyo_engine, csv_file, crs="EPSG:999999")
    assert _scalar(tokyo_engine, "SELECT count(*) FROM dataset") == before


def test_cli_imports_and_plans(tokyo_engine: Engine, tmp_path: Path) -> None:
    url = tokyo_engine.url.render_as_string(hide_password=False)
    env = cli_env(url, CIM_DATA_DIR=str(tmp_path / "data"))
    people = tmp_path / "people.csv"
    people.write_text("x,y,pop\n139.7010,35.6905,400\n139.7200,35.7000,300\n", encoding="utf-8")
    done = run_cim("import", "population", str(people), "--crs", "EPSG:4326", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dataset"]["counts"] == {"units": 2, "population": 700.0}
    planned = run_cim("analyse", "shelters", "plan", "--radius", "medium=500", "--json", env=env)
    assert planned.returncode == 0, planned.stderr
    stats = json.loads(planned.stdout)["stats"]
    assert stats["covered"] + stats["uncovered"] == 700.0
    suggested = run_cim(
        "analyse", "shelters", "suggest", "-k", "1", "--level", "medium", "--json", env=env
    )
    assert suggested.returncode == 0, suggested.stderr
    result = json.loads(suggested.stdout)
    assert result["gain"] == stats["uncovered"] and result["status"] == "optimal"
    bad = run_cim("analyse", "shelters", "plan", "--radius", "medium=far", env=env)
    assert bad.returncode == 2 and "LEVEL=NUMBER" in bad.stderr


def test_generated_ky4_demo_files_import_and_plan(server_url: str) -> None:
    """The demo city's generated shelter files import without a mapping and plan in UTM 16N."""
    from sqlalchemy.orm import Session

    from cim.services.shelters.plan import PlanParameters, create_plan
    from importers.shelters import import_hazards

    engine = make_engine(migrated_database(server_url, "cim_test_ky4_shelters", srid=32616))
    try:
        shelters = import_shelters(engine, MAPPINGS / "demo_ky4_shelters.geojson")
        population = import_population(engine, MAPPINGS / "demo_ky4_population.geojson")
        hazards = import_hazards(engine, MAPPINGS / "demo_ky4_hazards.geojson")
        assert shelters.dataset.counts["shelters"] == 21 and not shelters.warnings
        assert population.dataset.counts["units"] == 988
        assert hazards.dataset.counts["by_kind"] == {"flood": 1, "landslide": 1}
        with Session(engine) as session:
            plan = create_plan(session, params=PlanParameters()).model_dump()
            session.rollback()
        unusable = plan["stats"]["unusable_shelters"]
        assert [u["name"] for u in unusable.values()] == ["Demo emergency shelter 3 (generated)"]
        assert plan["stats"]["covered"] > 0 and plan["stats"]["uncovered"] > 0
    finally:
        engine.dispose()


def test_hazard_designations_decide_usability(tokyo_engine: Engine, tmp_path: Path) -> None:
    """With exclude_hazards, a Tokyo site not designated for a listed hazard is not used."""
    import yaml
    from sqlalchemy.orm import Session

    from cim.services.shelters.plan import PlanParameters, create_plan

    mapping = yaml.safe_load((MAPPINGS / "tokyo_emergency_shelters.yaml").read_text("utf-8"))
    mapping["capacity"] = {"value": 500}
    mapping_file = tmp_path / "tokyo_with_capacity.yaml"
    mapping_file.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    source = sample("jp_chiyoda_131016_emergency.geojson")
    shelters = import_shelters(tokyo_engine, source, mapping=mapping_file, replace=True)
    people = tmp_path / "chiyoda_people.csv"
    people.write_text("lon,lat,pop\n139.7580,35.6900,300\n139.7530,35.6950,300\n", "utf-8")
    population = import_population(tokyo_engine, people)
    features = json.loads(source.read_text("utf-8"))["features"]
    for kind, flag in (("earthquake", "地震"), ("tsunami", "津波")):
        designated = sum(1 for f in features if f["properties"][flag] == "1")
        with Session(tokyo_engine) as session:
            plan = create_plan(
                session,
                params=PlanParameters(
                    exclude_hazards=[kind],
                    shelter_datasets=[shelters.dataset.id],
                    population_datasets=[population.dataset.id],
                ),
            ).model_dump()
            session.rollback()
        reasons = [u["reason"] for u in plan["stats"]["unusable_shelters"].values()]
        assert reasons == ["not_designated"] * (28 - designated)
        assert plan["stats"]["usable_shelters"] == designated

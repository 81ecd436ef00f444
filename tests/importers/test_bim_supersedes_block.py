"""BIM supersedes the block: the FZK-Haus from IFC and from CityGML 3.0 in one database.

The same house exists as an IFC model (``ifc/AC20-FZK-Haus.ifc``) and as a CityGML 3.0 LoD2
model (``citymodels/FZK-Haus-LoD2-…gml``, EPSG:25832). Both go into one database stored in
EPSG:25832. Placed by its own IfcSite (RefLatitude/RefLongitude, TrueNorth -50°) the IFC house
lies about a kilometre from the CityGML one — the two samples disagree, and the test reports by
how much; placed with ``--origin`` at the CityGML footprint's corner it stands on its block, which
is then linked to it and left out of the tiles, in either import order. Deleting the IFC dataset
brings the block back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from importers.citymodel import import_buildings
from tests.conftest import migrated_database

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
FZK_GML = SAMPLES / "citymodels" / "FZK-Haus-LoD2-KIT-IAI-KHH-B36-V1__v3.gml"
FZK_IFC = SAMPLES / "ifc" / "AC20-FZK-Haus.ifc"
# South-west corner of the CityGML ground plan (12 m x 10 m) and its ground height.
GML_CORNER = (457842.0, 5439083.0, 111.8)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def utm_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_supersede", srid=25832))
    yield engine
    engine.dispose()


def _import_ifc(engine: Engine, *, on_the_block: bool) -> int:
    importer = pytest.importorskip("importers.ifc.importer")
    georef = pytest.importorskip("importers.ifc.georef")
    flags = georef.Flags(crs="EPSG:25832", origin=GML_CORNER) if on_the_block else georef.Flags()
    return int(importer.import_ifc(engine, FZK_IFC, flags=flags, replace=True).result.dataset.id)


def _rows(engine: Engine, sql: str, **bind: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), bind).all())


def _fresh(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))


def _pair(engine: Engine) -> Any:
    (row,) = _rows(
        engine,
        """
        SELECT ST_Area(c.footprint) AS gml_area, ST_Area(b.footprint) AS ifc_area,
               ST_Area(ST_Intersection(c.footprint, b.footprint)) AS overlap,
               ST_Distance(ST_Centroid(c.footprint), ST_Centroid(b.footprint)) AS offset,
               ST_X(ST_Centroid(b.footprint)) - ST_X(ST_Centroid(c.footprint)) AS dx,
               ST_Y(ST_Centroid(b.footprint)) - ST_Y(ST_Centroid(c.footprint)) AS dy,
               b.base_z - c.base_z AS dz, c.superseded_by, b.id AS ifc_building,
               dc.counts AS gml_counts, db.counts AS ifc_counts
        FROM building c JOIN dataset dc ON dc.id = c.dataset_id AND dc.kind = 'buildings',
             building b JOIN dataset db ON db.id = b.dataset_id AND db.kind = 'ifc'
        """,
    )
    return row


def test_placed_by_its_own_site_the_ifc_house_is_a_kilometre_off(utm_engine: Engine) -> None:
    _fresh(utm_engine)
    import_buildings(utm_engine, [FZK_GML])
    _import_ifc(utm_engine, on_the_block=False)
    pair = _pair(utm_engine)
    print(
        f"\nFZK-Haus, IFC placed by IfcSite vs CityGML: centroid offset {pair.offset:.1f} m "
        f"(dx {pair.dx:+.1f}, dy {pair.dy:+.1f}), base {pair.dz:+.2f} m; footprints "
        f"{pair.ifc_area:.1f} / {pair.gml_area:.1f} m², overlap {pair.overlap:.1f} m²"
    )
    assert pair.offset > 1000 and pair.overlap == 0  # the samples' own georeference disagrees
    assert pair.superseded_by is None and "superseded_blocks" not in pair.ifc_counts


@pytest.mark.parametrize("ifc_first", [False, True], ids=["citygml-first", "ifc-first"])
def test_the_ifc_house_on_its_block_supersedes_it(utm_engine: Engine, ifc_first: bool) -> None:
    _fresh(utm_engine)
    if ifc_first:
        _import_ifc(utm_engine, on_the_block=True)
    import_buildings(utm_engine, [FZK_GML])
    if not ifc_first:
        _import_ifc(utm_engine, on_the_block=True)
    pair = _pair(utm_engine)
    # IFC roof overhangs 0.5 m all round: 13 m x 11 m over the 12 m x 10 m ground plan
    assert (pair.gml_area, pair.overlap) == (pytest.approx(120.0), pytest.approx(120.0))
    assert pair.ifc_area == pytest.approx(143.0, abs=0.01)
    assert pair.superseded_by == pair.ifc_building
    linking = pair.gml_counts if ifc_first else pair.ifc_counts
    assert linking["superseded_blocks"] == 1
    assert _block_surfaces_in_tiles(utm_engine) == 0


def _block_surfaces_in_tiles(engine: Engine) -> int:
    from tiles.buildings import load_index

    with engine.connect() as conn:
        index = load_index(conn.connection.driver_connection)
    return int((index.ids < 0).sum())


def test_deleting_the_ifc_dataset_brings_the_block_back(utm_engine: Engine) -> None:
    _fresh(utm_engine)
    import_buildings(utm_engine, [FZK_GML])
    ifc_id = _import_ifc(utm_engine, on_the_block=True)
    assert _pair(utm_engine).superseded_by is not None
    with utm_engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset WHERE id = :d"), {"d": ifc_id})
    (row,) = _rows(utm_engine, "SELECT superseded_by FROM building")
    assert row.superseded_by is None
    assert _block_surfaces_in_tiles(utm_engine) > 0

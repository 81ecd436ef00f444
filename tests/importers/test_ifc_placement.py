"""Stored IFC coordinates equal ifcopenshell.util.geolocation + pyproj within 1 cm; the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import ifcopenshell
import ifcopenshell.util.geolocation as geolocation
import numpy as np
import pytest
from pyproj import Geod, Transformer
from scipy.spatial import cKDTree
from sqlalchemy import Engine, text

from importers.ifc import Flags, import_ifc
from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.importers.ifc_oracles import (
    IFC,
    UNOPENABLE,
    dataset_count,
    delete_dataset_rows,
    srid_engine,
    stored_triangles,
    world_vertices,
)

CENTIMETRE = 0.01


@pytest.fixture(scope="module")
def utm32(server_url: str) -> Iterator[Engine]:
    with srid_engine(server_url, 25832) as engine:
        yield engine


@pytest.fixture(scope="module")
def utm16(server_url: str) -> Iterator[Engine]:
    """The demo's storage CRS (EPSG:32616, Kentucky)."""
    with srid_engine(server_url, 32616) as engine:
        yield engine


def _assert_same_points(stored: np.ndarray, expected: np.ndarray) -> None:
    """Every expected point has a stored vertex within 1 cm, and the other way round."""
    stored = stored.reshape(-1, 3)
    distances, _ = cKDTree(stored).query(expected)
    assert distances.max() < CENTIMETRE, distances.max()
    back, _ = cKDTree(expected).query(stored)
    assert back.max() < CENTIMETRE, back.max()


def test_utm_map_conversion_with_millimetres(utm32: Engine) -> None:
    path = IFC / "geographic-referencing-utm.ifc"
    result = import_ifc(utm32, path, threads=1)
    assert result.to_dict()["georef_source"] == "IfcMapConversion"
    assert result.result.dataset.source_crs == "EPSG:25832"
    ifc = ifcopenshell.open(str(path))
    proxy = ifc.by_type("IfcBuildingElementProxy")[0]
    # Known points: the tessellation's own vertices (millimetres, identity placements).
    local_mm = np.array(proxy.Representation.Representations[0].Items[0].Coordinates.CoordList)
    params = geolocation.get_helmert_transformation_parameters(ifc)
    assert params is not None
    # The file's Scale=1000 is the inverse of mm -> m; ifcopenshell applies it literally
    # (a 1 m box would become 1 km), so the oracle uses the unit ratio 0.001 instead.
    fixed = params._replace(scale=0.001)
    enh = np.array([geolocation.xyz2enh(*p, *fixed) for p in local_mm])
    x, y = Transformer.from_crs(25832, 25832, always_xy=True).transform(enh[:, 0], enh[:, 1])
    expected = np.column_stack([x, y, enh[:, 2]])
    _assert_same_points(stored_triangles(utm32, result.result.dataset.id, proxy.GlobalId), expected)
    # The apex (0,0,0) is exactly the map conversion's false origin.
    assert expected[0] == pytest.approx([458657.30, 5438232.25, 113.7])


def test_rotated_map_conversion_with_crs_flag(engine: Engine) -> None:
    path = IFC / "geolocation-mapconversion-angle.ifc"
    result = import_ifc(engine, path, flags=Flags(crs="EPSG:4547"), threads=1, replace=True)
    try:
        dataset_id = result.result.dataset.id
        assert result.to_dict()["georef_source"] == "IfcMapConversion"
        ifc = ifcopenshell.open(str(path))
        to_storage = Transformer.from_crs(4547, 4547, always_xy=True)
        for product in ifc.by_type("IfcProduct"):
            if not product.Representation or product.is_a("IfcOpeningElement"):
                continue
            world_m, _ = world_vertices(ifc, product.GlobalId)
            # auto_xyz2enh takes project units (mm) and answers in map units, which are the
            # project's (mm) since the IfcProjectedCRS has no MapUnit.
            enh_mm = np.array([geolocation.auto_xyz2enh(ifc, *(p * 1000.0)) for p in world_m])
            x, y = to_storage.transform(enh_mm[:, 0] / 1000.0, enh_mm[:, 1] / 1000.0)
            expected = np.column_stack([x, y, enh_mm[:, 2] / 1000.0])
            _assert_same_points(stored_triangles(engine, dataset_id, product.GlobalId), expected)
    finally:
        delete_dataset_rows(engine, [result.result.dataset.id])


def test_site_lat_lon_with_true_north(utm32: Engine) -> None:
    # AC20-FZK-Haus has no map conversion: IfcSite RefLatitude/RefLongitude/RefElevation and a
    # TrueNorth 50 degrees off place it. (Its CityGML twin in citymodels/ lies 1.07 km away:
    # the two sources simply disagree, so the oracle is the IFC's own reference point.)
    path = IFC / "AC20-FZK-Haus.ifc"
    result = import_ifc(utm32, path, threads=2)
    assert result.to_dict()["georef_source"] == "IfcSite"
    ifc = ifcopenshell.open(str(path))
    site = ifc.by_type("IfcSite")[0]
    lat0 = geolocation.dms2dd(*site.RefLatitude)
    lon0 = geolocation.dms2dd(*site.RefLongitude)
    turn = np.radians(-geolocation.get_true_north(ifc))  # model axes -> east/north
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    to_utm = Transformer.from_crs(4326, 25832, always_xy=True)
    geod = Geod(ellps="WGS84")
    for guid in ("2XPyKWY018sA1ygZKgQPtU", ifc.by_type("IfcSlab")[0].GlobalId):
        world_m, _ = world_vertices(ifc, guid)
        east_north = world_m[:, :2] @ rotation.T
        azimuth = np.degrees(np.arctan2(east_north[:, 0], east_north[:, 1]))
        lon, lat, _ = geod.fwd(
            np.full(len(world_m), lon0), np.full(len(world_m), lat0),
            azimuth, np.hypot(east_north[:, 0], east_north[:, 1]),
        )  # fmt: skip
        x, y = to_utm.transform(lon, lat)
        expected = np.column_stack([x, y, world_m[:, 2] + site.RefElevation])
        stored = stored_triangles(utm32, result.result.dataset.id, guid)
        _assert_same_points(stored, expected)


def test_cli_demo_path_kentucky(utm16: Engine) -> None:
    url = utm16.url.render_as_string(hide_password=False)
    proc = run_cim(
        "import", "ifc", str(IFC / "AC20-FZK-Haus.ifc"),
        "--origin", "684000,4190000,260", "--crs", "EPSG:32616", "--rotation", "20",
        "--name", "FZK-Haus in KY4", "--json",
        env=cli_env(url.replace("postgresql+psycopg://", "postgresql://")),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["created"] is True
    assert data["georef_source"] == "--origin"
    assert data["dataset"]["name"] == "FZK-Haus in KY4"
    assert data["elements_by_class"]["IfcWallStandardCase"] == 13
    assert data["skipped_guids"] == []
    assert "--origin overrides" in proc.stderr
    with utm16.connect() as conn:
        base_z, distance = conn.execute(
            text(
                "SELECT base_z, ST_Distance(footprint, "
                "ST_SetSRID(ST_MakePoint(684000, 4190000), 32616)) FROM building "
                "WHERE dataset_id = :d"
            ),
            {"d": data["dataset"]["id"]},
        ).one()
    assert distance < 20
    assert 255 < base_z < 262  # the slab under ground floor level 0 sits at --origin's H


def test_cli_unopenable_file_exit_code(utm16: Engine) -> None:
    url = utm16.url.render_as_string(hide_password=False)
    env = cli_env(url.replace("postgresql+psycopg://", "postgresql://"))
    proc = run_cim("import", "ifc", str(IFC / UNOPENABLE), "--origin", "684000,4190000", env=env)
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines()[-1].startswith("cim: error: KIT-Simple-Road")
    assert dataset_count(utm16, UNOPENABLE) == 0

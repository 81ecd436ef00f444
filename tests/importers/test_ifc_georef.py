"""IFC georeferencing: which source wins, Scale and units, warnings, refusals (no database)."""

from __future__ import annotations

import math

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.geolocation as geolocation
import numpy as np
import pytest
from pyproj import Geod, Transformer

from cim.errors import InvalidInput, UnsupportedCRS
from importers.ifc.georef import Flags, check_model_extent, resolve_placement
from tests.conftest import SHARED_SAMPLES

IFC = SHARED_SAMPLES / "ifc"


def _open(name: str) -> ifcopenshell.file:
    return ifcopenshell.open(str(IFC / name))


def test_map_conversion_with_inverted_scale_is_repaired() -> None:
    ifc = _open("geographic-referencing-utm.ifc")
    placement = resolve_placement(ifc, flags=Flags(), storage_srid=25832)
    assert placement.source == "IfcMapConversion"
    assert placement.crs.to_epsg() == 25832
    # The file says Scale=1000 with millimetre project units and a metre map unit; the
    # ratio mm -> m is 0.001, so 1000 is the inverse and is corrected (with a warning).
    assert placement.details["scale_applied"] == pytest.approx(0.001)
    assert any("inverse of the unit ratio" in w for w in placement.warnings)
    params = geolocation.get_helmert_transformation_parameters(ifc)
    assert params is not None
    corrected = params._replace(scale=0.001)
    for local_mm in [(0.0, 0.0, 0.0), (500.0, -500.0, 2000.0), (-500.0, 500.0, 4000.0)]:
        expected = geolocation.xyz2enh(*local_mm, *corrected)
        world_m = np.array([local_mm]) * 0.001
        got = placement.apply(world_m)[0]
        assert got == pytest.approx(expected, abs=1e-6)


def test_empty_projected_crs_name_needs_crs_flag() -> None:
    ifc = _open("geolocation-mapconversion-angle.ifc")
    with pytest.raises(UnsupportedCRS, match="--crs"):
        resolve_placement(ifc, flags=Flags(), storage_srid=4547)
    placement = resolve_placement(ifc, flags=Flags(crs="EPSG:4547"), storage_srid=4547)
    assert placement.source == "IfcMapConversion"
    # No MapUnit: the map unit is the project unit (mm), so Scale 1 is right and
    # Eastings 15000 mm are 15 m.
    assert placement.details["scale_applied"] == 1.0
    assert placement.apply(np.zeros((1, 3)))[0] == pytest.approx([15.0, 0.0, 0.0])
    # x=15 m in a Gauss-Krueger zone with a 500 km false easting lies far west of the zone;
    # the coordinates are already in the storage CRS, so they are kept, with a warning.
    assert any("outside the area of use" in w for w in placement.warnings)
    theta = math.atan2(-0.5, 0.866025403784439)
    x_axis = placement.apply(np.array([[1.0, 0.0, 0.0]]))[0] - [15.0, 0.0, 0.0]
    assert x_axis == pytest.approx([math.cos(theta), math.sin(theta), 0.0])


def test_ifc2x3_property_sets_win_and_disagreement_is_reported() -> None:
    ifc = _open("Duplex_A_20110907_georeferenced.ifc")
    placement = resolve_placement(ifc, flags=Flags(), storage_srid=2169)
    assert placement.source == "ePSet_MapConversion"
    assert placement.crs.to_epsg() == 9897
    assert placement.apply(np.zeros((1, 3)))[0] == pytest.approx([76670.0, 77179.0, 293.700012])
    disagreement = [w for w in placement.warnings if "disagree" in w]
    assert len(disagreement) == 1 and "IfcSite" in disagreement[0]


def test_site_reference_with_true_north() -> None:
    ifc = _open("AC20-FZK-Haus.ifc")
    placement = resolve_placement(ifc, flags=Flags(), storage_srid=25832)
    assert placement.source == "IfcSite"
    lat = 49 + 6 / 60 + 1.566 / 3600
    lon = 8 + 26 / 60 + 11.5404 / 3600
    got_lon, got_lat = placement.origin_lonlat()
    assert (got_lon, got_lat) == pytest.approx((lon, lat), abs=1e-9)
    assert placement.apply(np.zeros((1, 3)))[0][2] == pytest.approx(110.0)
    # TrueNorth (0.766, 0.643) is 40 degrees counter-clockwise from model +X, so model +Y
    # points 50 degrees west of north: a point 10 m along model +Y lies at azimuth -50.
    x, y, _ = placement.apply(np.array([[0.0, 10.0, 0.0]]))[0]
    p_lon, p_lat = Transformer.from_crs(placement.crs, 4326, always_xy=True).transform(x, y)
    azimuth, _, distance = Geod(ellps="WGS84").inv(lon, lat, p_lon, p_lat)
    assert distance == pytest.approx(10.0, abs=1e-3)
    assert azimuth == pytest.approx(-50.0, abs=1e-3)


def test_file_far_outside_storage_crs_is_refused() -> None:
    ifc = _open("AC20-FZK-Haus.ifc")
    with pytest.raises(UnsupportedCRS, match=r"outside the area of use.*--origin"):
        resolve_placement(ifc, flags=Flags(), storage_srid=4547)


def test_unsigned_longitude_is_spotted() -> None:
    ifc = _open("Roof-01_BCAD.ifc")
    # 122 deg 23' E lies in the Yellow Sea; San Francisco (UTM 10N) is where it belongs.
    with pytest.raises(UnsupportedCRS, match=r"RefLongitude may be missing its minus sign"):
        resolve_placement(ifc, flags=Flags(), storage_srid=32610)
    placed = resolve_placement(
        ifc, flags=Flags(origin=(552000.0, 4183000.0, 5.0)), storage_srid=32610
    )
    assert placed.source == "--origin"
    assert any("RefLongitude looks wrong" in w for w in placed.warnings)


def test_no_georeferencing_needs_origin() -> None:
    ifc = _open("IfcOpenHouse_IFC4.ifc")
    with pytest.raises(InvalidInput, match="--origin E,N"):
        resolve_placement(ifc, flags=Flags(), storage_srid=32616)
    with pytest.raises(InvalidInput, match="--rotation needs --origin"):
        resolve_placement(ifc, flags=Flags(rotation=10.0), storage_srid=32616)


def test_origin_and_rotation_in_another_crs() -> None:
    ifc = _open("IfcOpenHouse_IFC4.ifc")
    flags = Flags(crs="EPSG:32616", origin=(680000.0, 4200000.0, 250.0), rotation=90.0)
    placement = resolve_placement(ifc, flags=flags, storage_srid=32616)
    assert placement.apply(np.array([[1.0, 0.0, 2.0]]))[0] == pytest.approx(
        [680000.0, 4200001.0, 252.0]
    )
    assert placement.warnings == []


def test_unknown_crs_name_asks_for_crs_flag() -> None:
    ifc = _open("geographic-referencing-utm.ifc")
    ifc.by_type("IfcProjectedCRS")[0].Name = "UTM in band 32"
    with pytest.raises(UnsupportedCRS, match=r"not one pyproj knows.*--crs"):
        resolve_placement(ifc, flags=Flags(), storage_srid=25832)
    placement = resolve_placement(ifc, flags=Flags(crs="EPSG:25832"), storage_srid=25832)
    assert placement.crs.to_epsg() == 25832
    assert any("overridden by --crs" in w for w in placement.warnings)


def test_ifc4x3_rigid_operation_is_a_shift() -> None:
    ifc = _open("geographic-referencing-utm.ifc")
    conversion = ifc.by_type("IfcMapConversion")[0]
    ifc.createIfcRigidOperation(
        conversion.SourceCRS,
        conversion.TargetCRS,
        ifc.createIfcLengthMeasure(458000.0),
        ifc.createIfcLengthMeasure(5438000.0),
        100.0,
    )
    ifc.remove(conversion)
    placement = resolve_placement(ifc, flags=Flags(), storage_srid=25832)
    assert placement.source == "IfcRigidOperation"
    # Project unit mm, map unit m (MapUnit): 1000 mm along X is 1 m east.
    assert placement.apply(np.array([[1.0, 2.0, 3.0]]))[0] == pytest.approx(
        [458001.0, 5438002.0, 103.0]
    )
    assert placement.warnings == []


def test_map_coordinates_with_a_site_reference_are_refused() -> None:
    # CYAA0BF3 (converted from CityGML) holds S-JTSK / Krovak coordinates (about -738 km,
    # -1044 km) in its geometry *and* a lat/lon on each of its 32 sites.
    ifc = _open("CYAA0BF3.gml.ifc")
    placement = resolve_placement(ifc, flags=Flags(), storage_srid=32633)
    assert placement.source == "IfcSite"
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    wall = ifcopenshell.geom.create_shape(settings, ifc.by_type("IfcWall")[0])
    vertices = np.asarray(wall.geometry.verts).reshape(-1, 3)
    assert vertices[:, 0].max() < -700_000
    with pytest.raises(InvalidInput, match=r"look like map coordinates.*--origin 0,0 --crs"):
        check_model_extent(placement, [vertices], 32633)
    # Taken as they are: the data centre (not the Krovak false origin) must suit the storage.
    flags = Flags(origin=(0.0, 0.0), crs="EPSG:5514")
    taken_as_is = resolve_placement(ifc, flags=flags, storage_srid=32633)
    check_model_extent(taken_as_is, [vertices], 32633)
    assert taken_as_is.apply(vertices) == pytest.approx(vertices)
    assert not any("area of use" in w for w in taken_as_is.warnings)
    far = resolve_placement(ifc, flags=flags, storage_srid=4547)
    with pytest.raises(UnsupportedCRS, match="outside the area of use"):
        check_model_extent(far, [vertices], 4547)

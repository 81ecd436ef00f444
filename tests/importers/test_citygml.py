"""``cim import buildings`` for CityGML 2.0 and 3.0: the samples, counts, vertices, bad input.

The samples lie in Germany (ETRS89 / UTM 32N with a DHHN height), so they go into a database of
their own stored in EPSG:3857 (a real transform, unlike 25832 -> 25832); the 4547 test database
(China) shows the out-of-area refusal. The oracles are independent: building counts and
coordinates read with lxml from the XML, transformed with pyproj directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lxml import etree
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from cim.errors import InvalidInput, UnsupportedCRS
from importers.citymodel import import_buildings
from tests.conftest import migrated_database

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "citymodels"
FZK = SAMPLES / "FZK-Haus-LoD2-KIT-IAI-KHH-B36-V1__v3.gml"
TUM = SAMPLES / "TUM-Main-Entrance.gml"
GML = "http://www.opengis.net/gml/3.2"
BUILDING_NAMESPACES = (
    "http://www.opengis.net/citygml/building/2.0",
    "http://www.opengis.net/citygml/building/3.0",
)


@pytest.fixture(scope="module")
def gml_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_citygml", srid=3857))
    yield engine
    engine.dispose()


def _scalar(engine: Engine, sql: str, **bind: object) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), bind).scalar_one()


def _xml_building_count(path: Path) -> int:
    tree = etree.parse(str(path))
    return sum(
        len(tree.findall(f".//{{{ns}}}{name}"))
        for ns in BUILDING_NAMESPACES
        for name in ("Building", "BuildingPart")
    )


def _xml_vertices(path: Path) -> np.ndarray:
    tree = etree.parse(str(path))
    values: list[float] = []
    for element in tree.iter(f"{{{GML}}}posList", f"{{{GML}}}pos"):
        if element.getparent().tag.endswith("LinearRing"):
            values.extend(float(v) for v in element.text.split())
    return np.asarray(values).reshape(-1, 3)


@pytest.mark.parametrize("path", [FZK, TUM], ids=["fzk-haus", "tum"])
def test_samples_import_with_their_counts_and_vertices(gml_engine: Engine, path: Path) -> None:
    result = import_buildings(gml_engine, [path], replace=True)
    dataset = result.dataset.id
    stored = _scalar(gml_engine, "SELECT count(*) FROM building WHERE dataset_id = :d", d=dataset)
    assert stored == _xml_building_count(path) == 1
    assert result.dataset.source_crs == "EPSG:25832"
    semantics = _scalar(
        gml_engine,
        "SELECT array_agg(DISTINCT semantic ORDER BY semantic) FROM building_surface "
        "WHERE dataset_id = :d",
        d=dataset,
    )
    assert semantics == ["GroundSurface", "RoofSurface", "WallSurface"]
    assert result.dataset.qc["degenerate_faces"] == result.dataset.qc["non_planar_faces"] == 0
    with gml_engine.connect() as conn:
        points = np.asarray(
            conn.execute(
                text(
                    "SELECT ST_X(p.geom), ST_Y(p.geom), ST_Z(p.geom) FROM building_surface s, "
                    "ST_DumpPoints(s.geom) p WHERE s.dataset_id = :d"
                ),
                {"d": dataset},
            ).all()
        )
    source = _xml_vertices(path)[::3]
    x, y = Transformer.from_crs("EPSG:25832", "EPSG:3857", always_xy=True).transform(
        source[:, 0], source[:, 1]
    )
    expected = np.column_stack([x, y, source[:, 2]])
    nearest = np.array([np.linalg.norm(points - p, axis=1).min() for p in expected])
    assert nearest.max() < 0.001, nearest.max()


def test_fzk_haus_footprint_and_height_are_the_files(gml_engine: Engine) -> None:
    """The file states a measured height of 6.52 m; the ground plan is 12 m x 10 m."""
    result = import_buildings(gml_engine, [FZK], replace=True)
    with gml_engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT ST_Area(ST_Transform(footprint, 25832)), height, top_z - base_z, "
                "storeys, function, year, lods, attrs->>'ConstructionMethod', source_id "
                "FROM building WHERE dataset_id = :d"
            ),
            {"d": result.dataset.id},
        ).one()
    area, height, extent, storeys, function, year, lods, method, source_id = row
    assert area == pytest.approx(120.0, abs=0.01)
    assert height == pytest.approx(6.52)
    assert extent == pytest.approx(6.52, abs=0.01)
    assert (storeys, function, year, lods) == (2, "1000", 2020, ["2"])
    assert method == "New Building"
    assert source_id == "UUID_d281adfc-4901-0f52-540b-4cc1a9325f82"


def _ring(points: list[tuple[float, float, float]]) -> str:
    closed = [*points, points[0]]
    return " ".join(f"{x} {y} {z}" for x, y, z in closed)


def _box_faces(x0: float, y0: float, size: float, z0: float, z1: float) -> dict[str, list[str]]:
    """posLists of a box's faces by thematic class (outward orientation)."""
    a, b, c, d = (x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size)
    walls = [
        _ring([(*p, z0), (*q, z0), (*q, z1), (*p, z1)]) for p, q in ((a, b), (b, c), (c, d), (d, a))
    ]
    return {
        "GroundSurface": [_ring([(*a, z0), (*d, z0), (*c, z0), (*b, z0)])],
        "RoofSurface": [_ring([(*a, z1), (*b, z1), (*c, z1), (*d, z1)])],
        "WallSurface": walls,
    }


def citygml_2(srs: str | None = "urn:ogc:def:crs:EPSG::25832") -> str:
    """One CityGML 2.0 building: lod2Solid of xlink:href polygons *before* its boundedBy."""
    faces = _box_faces(457842.0, 5439083.0, 10.0, 110.0, 115.0)
    ids = [f"poly{i}" for i in range(6)]
    surfaces, number = [], 0
    for semantic, rings in faces.items():
        for ring in rings:
            surfaces.append(
                f"<bldg:boundedBy><bldg:{semantic}><bldg:lod2MultiSurface><gml:MultiSurface>"
                f'<gml:surfaceMember><gml:Polygon gml:id="{ids[number]}"><gml:exterior>'
                f"<gml:LinearRing><gml:posList>{ring}</gml:posList></gml:LinearRing>"
                f"</gml:exterior></gml:Polygon></gml:surfaceMember></gml:MultiSurface>"
                f"</bldg:lod2MultiSurface></bldg:{semantic}></bldg:boundedBy>"
            )
            number += 1
    members = "".join(f'<gml:surfaceMember xlink:href="#{i}"/>' for i in ids)
    envelope = (
        f'<gml:boundedBy><gml:Envelope srsName="{srs}" srsDimension="3">'
        "<gml:lowerCorner>457842 5439083 110</gml:lowerCorner>"
        "<gml:upperCorner>457852 5439093 115</gml:upperCorner></gml:Envelope></gml:boundedBy>"
        if srs
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" '
        'xmlns:bldg="http://www.opengis.net/citygml/building/2.0" '
        'xmlns:gen="http://www.opengis.net/citygml/generics/2.0" '
        'xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f"{envelope}<core:cityObjectMember>"
        '<bldg:Building gml:id="B1"><gml:name>Box</gml:name>'
        '<gen:stringAttribute name="owner"><gen:value>city</gen:value></gen:stringAttribute>'
        '<gen:intAttribute name="floors"><gen:value>2</gen:value></gen:intAttribute>'
        "<bldg:function>1000</bldg:function><bldg:yearOfConstruction>1987</bldg:yearOfConstruction>"
        '<bldg:measuredHeight uom="m">5.0</bldg:measuredHeight>'
        "<bldg:storeysAboveGround>2</bldg:storeysAboveGround>"
        f"<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{members}"
        "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>"
        f"{''.join(surfaces)}</bldg:Building></core:cityObjectMember></core:CityModel>\n"
    )


def test_citygml_2_solid_of_hrefs_keeps_faces_once_with_their_classes(
    gml_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "box.gml"
    path.write_text(citygml_2())
    result = import_buildings(gml_engine, [path])
    dataset = result.dataset.id
    assert result.dataset.qc["faces"] == 6  # the solid's hrefs are the surfaces' polygons
    with gml_engine.connect() as conn:
        surfaces = dict(
            conn.execute(
                text(
                    "SELECT semantic, triangle_count FROM building_surface "
                    "WHERE dataset_id = :d AND lod = '2'"
                ),
                {"d": dataset},
            ).all()
        )
        row = conn.execute(
            text(
                "SELECT ST_Area(ST_Transform(footprint, 25832)), height, storeys, function, "
                "year, attrs->>'owner', attrs->'floors', name, base_z, top_z "
                "FROM building WHERE dataset_id = :d"
            ),
            {"d": dataset},
        ).one()
    assert surfaces == {"RoofSurface": 2, "WallSurface": 8, "GroundSurface": 2}
    assert row[0] == pytest.approx(100.0, abs=0.01)
    assert tuple(row[1:]) == (5.0, 2, "1000", 1987, "city", 2, "Box", 110.0, 115.0)


def _dataset_count(engine: Engine) -> int:
    return int(_scalar(engine, "SELECT count(*) FROM dataset"))


@pytest.mark.parametrize(
    ("content", "crs", "message"),
    [
        ("<a>\n<b>\n</a>", None, r"invalid XML at line 3"),
        (
            '<CityModel xmlns="http://www.opengis.net/citygml/2.0"><cityObjectMember/></CityModel>',
            "EPSG:25832",
            "no Building or BuildingPart",
        ),
        (citygml_2(srs=None), None, r"names no CRS \(srsName\); pass --crs"),
    ],
    ids=["invalid-xml", "no-buildings", "no-crs"],
)
def test_bad_input_stores_nothing(
    gml_engine: Engine, tmp_path: Path, content: str, crs: str | None, message: str
) -> None:
    path = tmp_path / "bad.gml"
    path.write_text(content)
    before = _dataset_count(gml_engine)
    with pytest.raises(InvalidInput, match=message) as caught:
        import_buildings(gml_engine, [path], crs=crs)
    assert "\n" not in str(caught.value)
    assert _dataset_count(gml_engine) == before


def test_no_crs_in_the_file_is_taken_from_crs(gml_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "no-crs.gml"
    path.write_text(citygml_2(srs=None))
    result = import_buildings(gml_engine, [path], crs="EPSG:25832")
    assert result.dataset.counts["buildings"] == 1


def test_outside_the_storage_crs_area_is_refused(engine: Engine) -> None:
    """The test database stores in EPSG:4547 (China): Karlsruhe is refused, nothing stored."""
    before = _scalar(engine, "SELECT count(*) FROM building")
    with pytest.raises(UnsupportedCRS, match="outside the area of use"):
        import_buildings(engine, [FZK])
    assert _scalar(engine, "SELECT count(*) FROM building") == before
    assert _scalar(engine, "SELECT count(*) FROM dataset WHERE kind = 'buildings'") == 0


def _inline_solid(lod: str, faces: dict[str, list[str]]) -> str:
    polygons = "".join(
        f"<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing>"
        f"<gml:posList>{ring}</gml:posList></gml:LinearRing></gml:exterior>"
        "</gml:Polygon></gml:surfaceMember>"
        for rings in faces.values()
        for ring in rings
    )
    return (
        f"<bldg:lod{lod}Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{polygons}"
        f"</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod{lod}Solid>"
    )


def citygml_2_parts() -> str:
    """A Building without geometry of its own and two LoD1 BuildingParts side by side."""
    parts = "".join(
        f'<bldg:consistsOfBuildingPart><bldg:BuildingPart gml:id="P{i}">'
        f"<bldg:measuredHeight>{height}</bldg:measuredHeight>"
        + _inline_solid(
            "1",
            _box_faces(457842.0 + 10 * i, 5439083.0, 10.0, 110.0, 110.0 + height),
        )
        + "</bldg:BuildingPart></bldg:consistsOfBuildingPart>"
        for i, height in enumerate((5.0, 8.0))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" '
        'xmlns:bldg="http://www.opengis.net/citygml/building/2.0" '
        'xmlns:gml="http://www.opengis.net/gml">'
        '<core:cityObjectMember><bldg:Building gml:id="B2">'
        f"{parts}</bldg:Building></core:cityObjectMember></core:CityModel>\n"
    )


def test_citygml_2_building_parts_are_rows_and_the_parent_takes_their_footprint(
    gml_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "parts.xml"
    path.write_text(citygml_2_parts())
    result = import_buildings(gml_engine, [path], crs="EPSG:25832")
    assert (result.dataset.counts["buildings"], result.dataset.counts["building_parts"]) == (1, 2)
    assert _xml_building_count(path) == 3
    with gml_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT source_id, attrs->>'parent', ST_Area(ST_Transform(footprint, 25832)), "
                "height, lods FROM building WHERE dataset_id = :d ORDER BY source_id"
            ),
            {"d": result.dataset.id},
        ).all()
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("B2", None, 8.0, ["1"]),  # top - base of its parts
        ("P0", "B2", 5.0, ["1"]),
        ("P1", "B2", 8.0, ["1"]),
    ]
    assert [r[2] for r in rows] == pytest.approx([200.0, 100.0, 100.0], abs=0.01)


def test_coordinates_not_in_groups_of_three_store_nothing(
    gml_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "broken.gml"
    path.write_text(citygml_2_parts().replace("</gml:posList>", " 1.0</gml:posList>", 1))
    before = _dataset_count(gml_engine)
    with pytest.raises(InvalidInput, match="groups of srsDimension"):
        import_buildings(gml_engine, [path], crs="EPSG:25832")
    assert _dataset_count(gml_engine) == before


def test_cli_imports_a_citygml_file(
    gml_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cim import buildings FILE.gml`` prints its one-line summary with the source CRS."""
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.setenv("CIM_DATABASE_URL", gml_engine.url.render_as_string(hide_password=False))
    path = tmp_path / "tum.gml"
    path.write_bytes(TUM.read_bytes() + b" ")
    done = CliRunner().invoke(app, ["import", "buildings", str(path)])
    assert done.exit_code == 0, done.output
    assert "1 buildings + 0 parts" in done.output and "EPSG:25832" in done.output
    bad = tmp_path / "bad.gml"
    bad.write_text("<a>\n<b>\n</a>")
    refused = CliRunner().invoke(app, ["import", "buildings", str(bad)])
    assert refused.exit_code != 0
    assert "invalid XML at line 3" in str(refused.exception)  # cli.main prints it


@pytest.mark.parametrize(
    ("srs_name", "expected"),
    [
        ("urn:adv:crs:ETRS89_UTM32*DE_DHHN92_NH", "EPSG:25832"),
        ("urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH", "EPSG:25833"),
        ("EPSG:25832", "EPSG:25832"),
        ("urn:ogc:def:crs:EPSG::25832", "EPSG:25832"),
        ("http://www.opengis.net/def/crs/EPSG/0/25832", "EPSG:25832"),
        ("urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::7837", "EPSG:25832"),
    ],
)
def test_srs_names_give_their_horizontal_crs(srs_name: str, expected: str) -> None:
    from importers.citymodel.citygml import horizontal_crs_text

    assert horizontal_crs_text(srs_name) == expected


def test_srs_name_on_a_geometry_when_the_model_has_no_envelope(
    gml_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "geometry-srs.gml"
    content = citygml_2(srs=None).replace(
        "<gml:Solid>", '<gml:Solid srsName="http://www.opengis.net/def/crs/EPSG/0/25832">'
    )
    path.write_text(content)
    result = import_buildings(gml_engine, [path])
    assert result.dataset.source_crs == "EPSG:25832"
    assert result.dataset.counts["triangles"] == 12


def citygml_3() -> str:
    """A CityGML 3.0 building: a LoD1 solid of its own, LoD2 wall with a window, a roof."""
    box = _box_faces(457842.0, 5439083.0, 10.0, 110.0, 115.0)
    wall = _ring([(457842, 5439083, 110), (457852, 5439083, 110), (457852, 5439083, 115)])
    window = _ring([(457844, 5439083, 111), (457845, 5439083, 111), (457845, 5439083, 112)])

    def surface(kind: str, ring: str, inner: str = "") -> str:
        return (
            f"<con:{kind}><lod2MultiSurface><gml:MultiSurface><gml:surfaceMember><gml:Polygon>"
            f"<gml:exterior><gml:LinearRing><gml:posList>{ring}</gml:posList></gml:LinearRing>"
            f"</gml:exterior></gml:Polygon></gml:surfaceMember></gml:MultiSurface>"
            f"</lod2MultiSurface>{inner}</con:{kind}>"
        )

    filling = f"<con:fillingSurface>{surface('WindowSurface', window)}</con:fillingSurface>"
    solid = _inline_solid("1", box).replace("bldg:lod1Solid", "lod1Solid")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<CityModel xmlns="http://www.opengis.net/citygml/3.0" '
        'xmlns:bldg="http://www.opengis.net/citygml/building/3.0" '
        'xmlns:con="http://www.opengis.net/citygml/construction/3.0" '
        'xmlns:gen="http://www.opengis.net/citygml/generics/3.0" '
        'xmlns:gml="http://www.opengis.net/gml/3.2">'
        '<gml:boundedBy><gml:Envelope srsName="EPSG:25832"/></gml:boundedBy>'
        '<cityObjectMember><bldg:Building gml:id="C3">'
        "<genericAttribute><gen:IntAttribute><gen:name>flats</gen:name><gen:value>6</gen:value>"
        "</gen:IntAttribute></genericAttribute>"
        f"<boundary>{surface('WallSurface', wall, filling)}</boundary>"
        f"<boundary>{surface('RoofSurface', box['RoofSurface'][0])}</boundary>"
        f"{solid}<bldg:function>1010</bldg:function></bldg:Building></cityObjectMember>"
        "</CityModel>\n"
    )


def test_citygml_3_lods_openings_and_generic_attributes(gml_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "v3.gml"
    path.write_text(citygml_3())
    result = import_buildings(gml_engine, [path])
    with gml_engine.connect() as conn:
        surfaces = set(
            conn.execute(
                text("SELECT lod, semantic FROM building_surface WHERE dataset_id = :d"),
                {"d": result.dataset.id},
            ).all()
        )
        row = conn.execute(
            text("SELECT attrs->'flats', function, lods FROM building WHERE dataset_id = :d"),
            {"d": result.dataset.id},
        ).one()
    assert surfaces == {
        ("1", None),
        ("2", "WallSurface"),
        ("2", "WindowSurface"),
        ("2", "RoofSurface"),
    }
    assert tuple(row) == (6, "1010", ["1", "2"])

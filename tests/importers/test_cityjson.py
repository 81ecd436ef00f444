"""``cim import buildings`` for CityJSON and CityJSONSeq: the samples, counts, vertices, bad input.

The samples lie in the Netherlands and Switzerland, far from the test database's storage CRS
(EPSG:4547, China), so they go into a database of their own with the world-wide EPSG:3857; the
4547 database shows the out-of-area refusal. The oracles are independent: building and part counts
as cjio (the CityJSON reference tool, ``cjio FILE info``) reports them, vertices transformed with
pyproj directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from cim.errors import InvalidInput, UnsupportedCRS
from importers.citymodel import import_buildings
from tests.conftest import migrated_database

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "citymodels"
CRS_OF = {  # files without metadata.referenceSystem: RD New + NAP (Den Haag, Rotterdam)
    "DH_01_subs.city.json": "EPSG:7415",
    "rotterdam_subset.city.json": "EPSG:7415",
    "zurich_subset_lod2.city.json": None,  # the file names EPSG:2056
}
HORIZONTAL = {"EPSG:7415": "EPSG:28992", None: "EPSG:2056"}


@pytest.fixture(scope="module")
def city_engine(server_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database(server_url, "cim_test_cityjson", srid=3857))
    yield engine
    engine.dispose()


def _scalar(engine: Engine, sql: str, **bind: object) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), bind).scalar_one()


def _load(name: str) -> dict[str, Any]:
    return dict(json.loads((SAMPLES / name).read_text()))


def _building_count(document: dict[str, Any]) -> int:
    return sum(
        1 for o in document["CityObjects"].values() if o["type"] in ("Building", "BuildingPart")
    )


def _cjio_counts(path: Path) -> dict[str, int]:
    """City objects by type, as ``cjio FILE info`` (the CityJSON reference tool) reports them in
    its tree (``|-- Building (4)``, parts nested below); a type under several parents is summed.

    cjio runs in a process of its own: importing it replaces ``json.encoder``'s float formatting
    for the whole process (six decimals, C encoder off), which broke every later test of the
    worker that writes JSON (glTF accessors, API bodies)."""
    cjio = Path(sys.executable).with_name("cjio")
    shown = subprocess.run([str(cjio), str(path), "info"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    counts: dict[str, int] = {}
    for match in re.finditer(r"\|-- (\w+) \((\d+)\)", shown.stdout):
        counts[match[1]] = counts.get(match[1], 0) + int(match[2])
    return counts


def _real_vertices(document: dict[str, Any]) -> np.ndarray:
    transform = document["transform"]
    return np.asarray(document["vertices"], float) * transform["scale"] + transform["translate"]


@pytest.mark.parametrize("name", sorted(CRS_OF))
def test_every_sample_imports_with_its_counts_and_vertices(city_engine: Engine, name: str) -> None:
    document = _load(name)
    result = import_buildings(city_engine, [SAMPLES / name], crs=CRS_OF[name], replace=True)
    dataset = result.dataset.id
    stored = _scalar(city_engine, "SELECT count(*) FROM building WHERE dataset_id = :d", d=dataset)
    assert stored == _building_count(document)
    counts = result.dataset.counts
    by_cjio = _cjio_counts(SAMPLES / name)
    assert (counts["buildings"], counts["building_parts"]) == (
        by_cjio["Building"],
        by_cjio.get("BuildingPart", 0),
    )
    assert counts["buildings"] + counts["building_parts"] == stored
    assert result.dataset.qc["faces"] >= counts["triangles"] / 100  # QC counts are reported
    # Every building has a footprint and heights (parents without geometry take their parts').
    missing = _scalar(
        city_engine,
        "SELECT count(*) FROM building WHERE dataset_id = :d AND "
        "(footprint IS NULL OR NOT ST_IsValid(footprint) OR base_z IS NULL OR height IS NULL "
        "OR lods IS NULL)",
        d=dataset,
    )
    assert missing == 0
    roofs = _scalar(
        city_engine,
        "SELECT count(*) FROM building_surface WHERE dataset_id = :d AND semantic = 'RoofSurface'",
        d=dataset,
    )
    assert roofs > 0
    # The box the importer stores with each surface (the tiler reads it) is PostGIS's own.
    off_box = _scalar(
        city_engine,
        "SELECT count(*) FROM building_surface s, Box3D(s.geom) b WHERE s.dataset_id = :d AND"
        " (s.min_x, s.min_y, s.min_z, s.max_x, s.max_y, s.max_z) IS DISTINCT FROM"
        " (ST_XMin(b), ST_YMin(b), ST_ZMin(b), ST_XMax(b), ST_YMax(b), ST_ZMax(b))",
        d=dataset,
    )
    assert off_box == 0
    _assert_vertices_within_1mm(city_engine, dataset, document, HORIZONTAL[CRS_OF[name]])


def _assert_vertices_within_1mm(
    engine: Engine, dataset: int, document: dict[str, Any], source: str
) -> None:
    with engine.connect() as conn:
        stored = np.asarray(
            conn.execute(
                text(
                    "SELECT ST_X(p.geom), ST_Y(p.geom), ST_Z(p.geom) FROM building_surface s, "
                    "ST_DumpPoints(s.geom) p WHERE s.dataset_id = :d"
                ),
                {"d": dataset},
            ).all()
        )
    used = sorted({i for i in _indices(document)})
    vertices = _real_vertices(document)[used[:: max(1, len(used) // 25)]]
    x, y = Transformer.from_crs(source, "EPSG:3857", always_xy=True).transform(
        vertices[:, 0], vertices[:, 1]
    )
    expected = np.column_stack([x, y, vertices[:, 2]])
    nearest = np.array([np.linalg.norm(stored - point, axis=1).min() for point in expected])
    # A vertex only in rejected (degenerate) faces is absent; nearly all must be there.
    print("NEAREST", (nearest < 0.001).mean(), np.sort(nearest)[-3:])
    assert (nearest < 0.001).mean() > 0.9, nearest.max()


def _indices(document: dict[str, Any]) -> Iterator[int]:
    def walk(item: Any) -> Iterator[int]:
        if isinstance(item, int):
            yield item
        elif isinstance(item, list):
            for child in item:
                yield from walk(child)

    for city_object in document["CityObjects"].values():
        for geometry in city_object.get("geometry", []):
            yield from walk(geometry["boundaries"])


def _reindexed(item: Any, mapping: dict[int, int]) -> Any:
    if isinstance(item, int):
        return mapping.setdefault(item, len(mapping))
    return [_reindexed(child, mapping) for child in item]


def write_sequence(document: dict[str, Any], path: Path, crs: str) -> None:
    """A CityJSONSeq of ``document``: a header line, then one feature per Building + its parts."""
    header = {
        "type": "CityJSON",
        "version": "2.0",
        "transform": document["transform"],
        "metadata": {"referenceSystem": f"https://www.opengis.net/def/crs/EPSG/0/{crs[5:]}"},
        "CityObjects": {},
        "vertices": [],
    }
    lines = [json.dumps(header)]
    objects = document["CityObjects"]
    for key, city_object in objects.items():
        if city_object.get("parents"):
            continue
        members = [key, *city_object.get("children", [])]
        mapping: dict[int, int] = {}
        feature_objects = {}
        for member in members:
            copied = dict(objects[member])
            copied["geometry"] = [
                {**g, "boundaries": _reindexed(g["boundaries"], mapping)}
                for g in copied.get("geometry", [])
            ]
            feature_objects[member] = copied
        vertices = [document["vertices"][old] for old in sorted(mapping, key=mapping.__getitem__)]
        feature = {"type": "CityJSONFeature", "id": key, "CityObjects": feature_objects}
        lines.append(json.dumps({**feature, "vertices": vertices}))
    path.write_text("\n".join(lines) + "\n")


def test_cityjsonseq_imports_the_same_counts(city_engine: Engine, tmp_path: Path) -> None:
    document = _load("DH_01_subs.city.json")
    path = tmp_path / "dh.city.jsonl"
    write_sequence(document, path, "EPSG:7415")
    whole = import_buildings(city_engine, [SAMPLES / "DH_01_subs.city.json"], crs="EPSG:7415")
    streamed = import_buildings(city_engine, [path])
    assert streamed.created
    for key in ("buildings", "building_parts", "surfaces", "triangles"):
        assert streamed.dataset.counts[key] == whole.dataset.counts[key], key
    heights = (
        "SELECT round(sum(height)::numeric, 3) FROM building WHERE dataset_id = :d AND "
        "attrs ? 'parent'"
    )
    assert _scalar(city_engine, heights, d=streamed.dataset.id) == _scalar(
        city_engine, heights, d=whole.dataset.id
    )


def test_geometry_instance_is_placed(city_engine: Engine, tmp_path: Path) -> None:
    """A unit-cube template, scaled x2 in z and moved to its reference point."""
    cube = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]
    faces = [[[0, 3, 2, 1]], [[4, 5, 6, 7]], [[0, 1, 5, 4]], [[1, 2, 6, 5]], [[2, 3, 7, 6]]]
    faces.append([[3, 0, 4, 7]])
    semantics = {"surfaces": [{"type": "GroundSurface"}, {"type": "RoofSurface"}], "values": []}
    semantics["values"] = [0, 1, None, None, None, None]
    template = {"type": "MultiSurface", "lod": "1", "boundaries": faces, "semantics": semantics}
    instance = {
        "type": "GeometryInstance",
        "template": 0,
        "boundaries": [0],
        "transformationMatrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1],
    }
    document = {
        "type": "CityJSON",
        "version": "2.0",
        "transform": {"scale": [0.001, 0.001, 0.001], "translate": [85000.0, 446000.0, 0.0]},
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/28992"},
        "CityObjects": {"b1": {"type": "Building", "geometry": [instance]}},
        "geometry-templates": {"templates": [template], "vertices-templates": cube},
        "vertices": [[10000, 20000, 3000]],
    }
    path = tmp_path / "instance.city.json"
    path.write_text(json.dumps(document))
    result = import_buildings(city_engine, [path])
    row = (
        "SELECT base_z, top_z, height, lods, ST_NPoints(footprint) FROM building "
        "WHERE dataset_id = :d"
    )
    with city_engine.connect() as conn:
        base, top, height, lods, points = conn.execute(text(row), {"d": result.dataset.id}).one()
    assert (base, top, height, lods) == (3.0, 5.0, 2.0, ["1"])
    assert points == 5  # the ground square, closed
    assert result.dataset.counts["surfaces"] == 3  # ground, roof, walls (no semantics)


def _bad(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("content", "crs", "message"),
    [
        ('{"type": "CityJSON", "version": "2.0", ', "EPSG:7415", "invalid JSON"),
        ('{"type": "CityJSON", "version": "0.9", "CityObjects": {}, "vertices": []}', None, "0.9"),
        ('{"type": "CityJSON", "version": "2.0", "CityObjects": {}, "vertices": []}', None, "CRS"),
        (
            '{"type": "CityJSON", "version": "2.0", "CityObjects": {}, "vertices": []}',
            "EPSG:7415",
            "no Building",
        ),
    ],
)
def test_bad_input_stores_nothing(
    city_engine: Engine, tmp_path: Path, content: str, crs: str | None, message: str
) -> None:
    before = _scalar(city_engine, "SELECT count(*) FROM dataset")
    with pytest.raises(InvalidInput, match=message):
        import_buildings(city_engine, [_bad(tmp_path, "bad.city.json", content)], crs=crs)
    assert _scalar(city_engine, "SELECT count(*) FROM dataset") == before


def test_no_crs_refused_then_given_with_crs(city_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "rotterdam.city.json"  # other bytes than the sample imported above
    path.write_text((SAMPLES / "rotterdam_subset.city.json").read_text() + "\n")
    with pytest.raises(InvalidInput, match="--crs"):
        import_buildings(city_engine, [path])
    again = import_buildings(city_engine, [path], crs="EPSG:7415")
    assert not import_buildings(city_engine, [path], crs="EPSG:7415").created
    assert again.dataset.source_crs == "EPSG:28992"


def test_outside_the_storage_crs_area_is_refused(engine: Engine) -> None:
    """The test database stores in EPSG:4547 (China): Zürich is refused, nothing stored."""
    before = _scalar(engine, "SELECT count(*) FROM building")
    with pytest.raises(UnsupportedCRS, match="outside the area of use"):
        import_buildings(engine, [SAMPLES / "zurich_subset_lod2.city.json"])
    assert _scalar(engine, "SELECT count(*) FROM building") == before
    assert _scalar(engine, "SELECT count(*) FROM dataset WHERE kind = 'buildings'") == 0


def test_cli_command_prints_its_summary(
    city_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cli.import_buildings.command`` (to be mounted as ``cim import buildings``)."""
    import typer
    from typer.testing import CliRunner

    from cli.import_buildings import command

    app = typer.Typer()
    app.command("buildings")(command)
    monkeypatch.setenv("CIM_DATABASE_URL", city_engine.url.render_as_string(hide_password=False))
    path = tmp_path / "dh.city.json"
    path.write_text((SAMPLES / "DH_01_subs.city.json").read_text() + " ")
    done = CliRunner().invoke(app, [str(path), "--crs", "EPSG:7415"])
    assert done.exit_code == 0, done.output
    assert "4 buildings + 8 parts" in done.output and "EPSG:28992" in done.output


def test_cityjson_1_0_with_a_urn_and_bad_faces_counted(city_engine: Engine, tmp_path: Path) -> None:
    """1.0: numeric LoD, URN CRS, a Solid; a non-planar and a degenerate face are counted."""
    vertices = [[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0], [0, 0, 5], [10, 0, 5]]
    vertices += [[10, 10, 6], [0, 10, 5]]  # the roof corner 6 lifts the roof out of plane
    shell = [[[0, 3, 2, 1]], [[4, 5, 6, 7]], [[0, 1, 5, 4]], [[1, 1, 2]]]
    document = {
        "type": "CityJSON",
        "version": "1.0",
        "metadata": {"referenceSystem": "urn:ogc:def:crs:EPSG::28992"},
        "CityObjects": {
            "b": {
                "type": "Building",
                "attributes": {
                    "measuredHeight": 5.5,
                    "function": "1000",
                    "yearOfConstruction": 1930,
                    "storeysAboveGround": 2,
                },
                "geometry": [{"type": "Solid", "lod": 2, "boundaries": [shell]}],
            },
        },
        "vertices": [[85000 + x, 446000 + y, z] for x, y, z in vertices],
    }
    path = tmp_path / "v10.json"
    path.write_text(json.dumps(document))
    result = import_buildings(city_engine, [path])
    qc = result.dataset.qc
    assert (qc["faces"], qc["non_planar_faces"], qc["degenerate_faces"]) == (4, 1, 1)
    assert "2 of 4 faces left out" in result.warnings[0]
    sql = "SELECT lods, height, storeys, function, year FROM building WHERE dataset_id = :d"
    with city_engine.connect() as conn:
        row = conn.execute(text(sql), {"d": result.dataset.id}).one()
    assert tuple(row) == (["2"], 5.5, 2, "1000", 1930)


def test_a_bad_line_in_a_sequence_stores_nothing(city_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "broken.city.jsonl"
    write_sequence(_load("DH_01_subs.city.json"), path, "EPSG:7415")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], '{"type": "CityJSONFeature", ', *lines[2:]]) + "\n")
    before = _scalar(city_engine, "SELECT count(*) FROM building")
    with pytest.raises(InvalidInput, match="line 3: invalid JSON"):
        import_buildings(city_engine, [path])
    assert _scalar(city_engine, "SELECT count(*) FROM building") == before

"""``import_ifc`` on every shared IFC sample, checked against ifcopenshell's own answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import ifcopenshell
import ifcopenshell.util.element
import ifcopenshell.util.shape
import pytest
from sqlalchemy import Engine, text

from cim.errors import ImportFailed, UnsupportedCRS
from importers.ifc import Flags, IfcImport, import_ifc
from tests.importers.ifc_oracles import (
    EMPTY,
    IFC,
    SLOW,
    UNOPENABLE,
    dataset_count,
    delete_dataset_rows,
    iterator_oracle,
    mesh_area_volume,
    sample_files,
    stored_triangles,
    world_vertices,
)

# The test database stores EPSG:4547 (Gauss-Krueger CM 114E); the samples lie in Europe and
# the US, so they are placed with --origin inside that zone (overriding their own georef).
ORIGIN = Flags(origin=(500000.0, 3000000.0, 10.0), rotation=30.0)


@pytest.fixture(scope="module")
def imported(engine: Engine) -> Iterator[Callable[[str], IfcImport]]:
    """Import a sample once per module (with ORIGIN) and delete all of them at the end."""
    cache: dict[str, IfcImport] = {}

    def load(name: str) -> IfcImport:
        if name not in cache:
            cache[name] = import_ifc(engine, IFC / name, flags=ORIGIN, threads=2, replace=True)
        return cache[name]

    yield load
    delete_dataset_rows(engine, [r.result.dataset.id for r in cache.values()])


def _params() -> list[object]:
    return [
        pytest.param(p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])
        for p in sample_files()
    ]


@pytest.mark.parametrize("name", _params())
def test_element_counts_match_the_iterator(
    name: str, engine: Engine, imported: Callable[[str], IfcImport]
) -> None:
    by_class, triangles, guids = iterator_oracle(IFC / name)
    result = imported(name)
    dataset_id = result.result.dataset.id
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                text(
                    "SELECT ifc_class, count(*) FROM building_element WHERE dataset_id = :d "
                    "GROUP BY ifc_class"
                ),
                {"d": dataset_id},
            ).all()
        )
        totals = conn.execute(
            text(
                "SELECT coalesce(sum(triangle_count), 0), "
                "coalesce(sum(ST_NumGeometries(mesh)), 0), "
                "count(*) FILTER (WHERE is_space), count(*) FILTER (WHERE ifc_class = 'IfcSpace'),"
                " count(DISTINCT guid) FROM building_element WHERE dataset_id = :d"
            ),
            {"d": dataset_id},
        ).one()
        structure = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM building WHERE dataset_id = :d), "
                "(SELECT count(*) FROM building_storey WHERE dataset_id = :d)"
            ),
            {"d": dataset_id},
        ).one()
    assert stored == dict(by_class)
    assert totals[0] == totals[1] == triangles
    assert totals[2] == totals[3]
    assert totals[4] == len(guids)
    ifc = ifcopenshell.open(str(IFC / name))
    assert tuple(structure) == (
        len(ifc.by_type("IfcBuilding")),
        len(ifc.by_type("IfcBuildingStorey")),
    )
    counts = result.result.dataset.counts
    assert counts["elements_by_class"] == dict(by_class)
    assert result.to_dict()["georef_source"] == "--origin"


def test_failed_geometry_is_skipped_and_named(imported: Callable[[str], IfcImport]) -> None:
    # House_Renga's IFC2X3 export writes derived attributes ('*') where values belong; the
    # geometry of 83 of its products cannot be built.
    result = imported("House_Renga.ifc").to_dict()
    skipped = result["skipped_guids"]
    _, _, yielded = iterator_oracle(IFC / "House_Renga.ifc")
    ifc = ifcopenshell.open(str(IFC / "House_Renga.ifc"))
    assert skipped and not set(skipped) & yielded
    assert all(ifc.by_guid(g).Representation is not None for g in skipped)
    assert result["dataset"]["counts"]["skipped"] == len(skipped)
    assert any(skipped[0] in w and "skipped" in w for w in result["warnings"])


@pytest.mark.parametrize(
    ("name", "guid"),
    [
        ("AC20-FZK-Haus.ifc", "2XPyKWY018sA1ygZKgQPtU"),  # interior wall
        ("AC20-FZK-Haus.ifc", "3PfS__Y_DBAfq5naM6zD2Z"),  # wall with an opening
        ("IfcOpenHouse_IFC4.ifc", "3g46_woBL6sugXeY5_WP6n"),  # south wall
    ],
)
def test_mesh_area_and_volume_match_ifcopenshell(
    name: str, guid: str, engine: Engine, imported: Callable[[str], IfcImport]
) -> None:
    dataset_id = imported(name).result.dataset.id
    _, geometry = world_vertices(ifcopenshell.open(str(IFC / name)), guid)
    expected_area = ifcopenshell.util.shape.get_area(geometry)
    expected_volume = ifcopenshell.util.shape.get_volume(geometry)
    area, volume = mesh_area_volume(stored_triangles(engine, dataset_id, guid))
    assert area == pytest.approx(expected_area, rel=1e-3)
    assert volume == pytest.approx(expected_volume, rel=1e-3)


def test_slab_area_and_volume(engine: Engine, imported: Callable[[str], IfcImport]) -> None:
    ifc = ifcopenshell.open(str(IFC / "AC20-FZK-Haus.ifc"))
    slab = ifc.by_type("IfcSlab")[0]
    dataset_id = imported("AC20-FZK-Haus.ifc").result.dataset.id
    _, geometry = world_vertices(ifc, slab.GlobalId)
    area, volume = mesh_area_volume(stored_triangles(engine, dataset_id, slab.GlobalId))
    assert area == pytest.approx(ifcopenshell.util.shape.get_area(geometry), rel=1e-3)
    assert volume == pytest.approx(ifcopenshell.util.shape.get_volume(geometry), rel=1e-3)


def test_psets_material_colour_and_parents(
    engine: Engine, imported: Callable[[str], IfcImport]
) -> None:
    guid = "2XPyKWY018sA1ygZKgQPtU"
    dataset_id = imported("AC20-FZK-Haus.ifc").result.dataset.id
    ifc = ifcopenshell.open(str(IFC / "AC20-FZK-Haus.ifc"))
    wall = ifc.by_guid(guid)
    psets = ifcopenshell.util.element.get_psets(wall)
    expected = json.loads(
        json.dumps({n: {k: v for k, v in p.items() if k != "id"} for n, p in psets.items()})
    )
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT e.psets, e.material, e.color, s.guid, b.guid, e.is_space "
                "FROM building_element e JOIN building_storey s ON s.id = e.storey_id "
                "JOIN building b ON b.id = e.building_id "
                "WHERE e.dataset_id = :d AND e.guid = :g"
            ),
            {"d": dataset_id, "g": guid},
        ).one()
    assert row[0] == expected
    names = [m.Name for m in ifcopenshell.util.element.get_materials(wall)]
    assert row[1] == "; ".join(dict.fromkeys(names)) == "Leichtbeton 102890359"
    assert row[2] is not None and len(row[2]) == 4
    assert row[3] == ifcopenshell.util.element.get_container(wall).GlobalId
    assert row[4] == ifc.by_type("IfcBuilding")[0].GlobalId
    assert row[5] is False


def test_spaces_are_flagged(engine: Engine, imported: Callable[[str], IfcImport]) -> None:
    dataset_id = imported("AC20-FZK-Haus.ifc").result.dataset.id
    with engine.connect() as conn:
        flagged = conn.execute(
            text("SELECT count(*) FROM building_element WHERE dataset_id = :d AND is_space"),
            {"d": dataset_id},
        ).scalar_one()
    assert flagged == 7


def test_building_outline_and_heights(engine: Engine, imported: Callable[[str], IfcImport]) -> None:
    dataset_id = imported("AC20-FZK-Haus.ifc").result.dataset.id
    with engine.connect() as conn:
        building = conn.execute(
            text(
                "SELECT ST_Area(footprint), base_z, top_z, ST_Distance(footprint, "
                "ST_SetSRID(ST_MakePoint(500000, 3000000), 4547)) FROM building "
                "WHERE dataset_id = :d"
            ),
            {"d": dataset_id},
        ).one()
        elements = conn.execute(
            text(
                "SELECT min(ST_ZMin(bbox3d)), max(ST_ZMax(bbox3d)) FROM building_element "
                "WHERE dataset_id = :d AND building_id IS NOT NULL AND NOT is_space"
            ),
            {"d": dataset_id},
        ).one()
    area, base_z, top_z, distance = building
    assert 100 < area < 250  # a 12 m x 10 m house with eaves
    assert (base_z, top_z) == pytest.approx(tuple(elements))
    assert distance < 20  # the model's origin (placed at --origin) is at the house


def test_same_file_again_is_a_noop(engine: Engine, imported: Callable[[str], IfcImport]) -> None:
    first = imported("IfcOpenHouse_IFC4.ifc")
    again = import_ifc(engine, IFC / "IfcOpenHouse_IFC4.ifc", flags=ORIGIN)
    assert again.result.created is False
    assert again.result.dataset.id == first.result.dataset.id


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (UNOPENABLE, "ifcopenshell cannot open it: Unsupported schema: IFC4X3_RC2"),
        (EMPTY, "no spatial structure"),
    ],
)
def test_broken_files_fail_cleanly(engine: Engine, name: str, message: str) -> None:
    with pytest.raises(ImportFailed, match=message):
        import_ifc(engine, IFC / name, flags=ORIGIN)
    assert dataset_count(engine, name) == 0


def test_outside_the_storage_crs_leaves_nothing(engine: Engine, tmp_path: Path) -> None:
    # The same house, without --origin: its IfcSite lat/lon is Karlsruhe, far from CM 114E.
    copy = tmp_path / "Haus.ifc"
    copy.write_bytes((IFC / "AC20-FZK-Haus.ifc").read_bytes() + b"\n")
    with pytest.raises(UnsupportedCRS, match="outside the area of use"):
        import_ifc(engine, copy)
    assert dataset_count(engine, "Haus.ifc") == 0


@pytest.mark.parametrize(
    ("name", "guid"),
    [
        ("Duplex_A_20110907_georeferenced.ifc", "1hOSvn6df7F8_7GcBWlRGQ"),  # door, IfcDoorStyle
        ("CPM.ifc", None),  # first slab of an ODA export
    ],
)
def test_psets_with_type_sets_round_trip(
    name: str, guid: str | None, engine: Engine, imported: Callable[[str], IfcImport]
) -> None:
    dataset_id = imported(name).result.dataset.id
    ifc = ifcopenshell.open(str(IFC / name))
    with engine.connect() as conn:
        guid = (
            guid
            or conn.execute(
                text(
                    "SELECT guid FROM building_element WHERE dataset_id = :d"
                    " AND ifc_class = 'IfcSlab' ORDER BY id LIMIT 1"
                ),
                {"d": dataset_id},
            ).scalar_one()
        )
    element = ifc.by_guid(guid)
    psets = ifcopenshell.util.element.get_psets(element)  # type sets inherited
    expected = json.loads(
        json.dumps({n: {k: v for k, v in p.items() if k != "id"} for n, p in psets.items()})
    )
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT psets FROM building_element WHERE dataset_id = :d AND guid = :g"),
            {"d": dataset_id, "g": element.GlobalId},
        ).scalar_one()
    assert stored == expected
    assert len(expected) >= 2

"""GIS layers: Aalto shapefiles (no .shx) with node codes, KY4 GeoJSON snapped to points or ends."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import Engine

from tests.importers.pipes_helpers import PIPES, nodes, run, segments

AALTO = PIPES / "aalto_demo_catchment"
ORIGIN = (500_000.0, 3_400_000.0, 0.0)


def _read(path: Path) -> object:
    os.environ["SHAPE_RESTORE_SHX"] = "YES"
    return pyogrio.read_dataframe(path)


def test_aalto_shapefiles_codes_and_elevations(engine: Engine, clean_tables: None) -> None:
    conduits, junctions, outfalls = (
        _read(AALTO / f"{n}.shp") for n in ("conduits", "junctions", "outfalls")
    )
    files = [AALTO / f"{n}.shp" for n in ("conduits", "junctions", "outfalls")]
    # The .prj says EPSG:3879 but the coordinates are local metres: place them with --origin.
    result = run(engine, *files, crs="EPSG:4547", origin=ORIGIN, utility="YS")
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    assert len(links) == len(conduits)  # type: ignore[arg-type]
    assert len(stored) == len(junctions) + len(outfalls)  # type: ignore[arg-type]
    assert [n["kind"] for n in stored.values()].count("outfall") == len(outfalls)  # type: ignore[arg-type]
    for row in junctions.itertuples():  # type: ignore[attr-defined]
        node = stored[row.name]
        assert node["ground_z"] == pytest.approx(row.elevation, abs=1e-3)
        assert node["bottom_z"] == pytest.approx(row.inv_elev, abs=1e-3)
        assert node["x"] == pytest.approx(ORIGIN[0] + row.geometry.x, abs=1e-3)
        assert node["y"] == pytest.approx(ORIGIN[1] + row.geometry.y, abs=1e-3)
    for row in conduits.itertuples():  # type: ignore[attr-defined]
        link = links[row.name]
        assert (link["start"], link["end"]) == (row.junc_in, row.junc_out)
        assert link["start_invert_z"] == pytest.approx(row.elev_in, abs=1e-3)
        assert link["end_invert_z"] == pytest.approx(row.elev_out, abs=1e-3)
        assert link["diameter_mm"] == pytest.approx(row.Geom1 * 1000, abs=1e-3)
        assert link["utility"] == "PS"
    assert result.dataset.qc["by_rule"]["missing_node"] == 0


def test_ky4_lines_snap_to_point_layers(engine: Engine, clean_tables: None) -> None:
    pipes = pyogrio.read_dataframe(PIPES / "ky4_pipes.geojson")
    layers = ["ky4_pipes", "ky4_junctions", "ky4_tanks", "ky4_reservoirs"]
    points = sum(pyogrio.read_info(PIPES / f"{n}.geojson")["features"] for n in layers[1:])
    result = run(engine, *(PIPES / f"{n}.geojson" for n in layers), utility="JS")
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    assert len(stored) == points and len(links) == len(pipes)
    assert "derived" not in result.dataset.counts["nodes_by_kind"]
    # every pipe joins the junctions WNTR names for it
    for row in pipes.itertuples():
        assert (links[row.name]["start"], links[row.name]["end"]) == (
            row.start_node_name,
            row.end_node_name,
        )
    to_storage = Transformer.from_crs("EPSG:3547", "EPSG:4547", always_xy=True)
    junctions = pyogrio.read_dataframe(PIPES / "ky4_junctions.geojson").head(100)
    xy = shapely.get_coordinates(junctions.geometry.values)
    xs, ys = to_storage.transform(xy[:, 0], xy[:, 1])
    got = np.array([[stored[n]["x"], stored[n]["y"]] for n in junctions["name"]])
    assert np.abs(got - np.column_stack([xs, ys])).max() < 1e-3


def _ignore_names(tmp_path: Path) -> Path:
    mapping = tmp_path / "snap.yaml"
    mapping.write_text("ignore: [start_node_name, end_node_name]\n", encoding="utf-8")
    return mapping


def test_ky4_lines_without_names_snap_to_points(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    pipes = pyogrio.read_dataframe(PIPES / "ky4_pipes.geojson")
    layers = ["ky4_pipes", "ky4_junctions", "ky4_tanks", "ky4_reservoirs"]
    result = run(
        engine,
        *(PIPES / f"{n}.geojson" for n in layers),
        utility="JS",
        mapping=_ignore_names(tmp_path),
    )
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    assert "derived" not in result.dataset.counts["nodes_by_kind"]
    for row in pipes.itertuples():  # snapped to a point at the very place WNTR names
        for end, name in (("start", row.start_node_name), ("end", row.end_node_name)):
            got = stored[links[row.name][end]]
            assert (got["x"], got["y"]) == pytest.approx(
                (stored[name]["x"], stored[name]["y"]), abs=1e-3
            )


def test_line_ends_alone_become_shared_nodes(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    pipes = pyogrio.read_dataframe(PIPES / "ky4_pipes.geojson")
    result = run(engine, PIPES / "ky4_pipes.geojson", utility="JS", mapping=_ignore_names(tmp_path))
    stored = nodes(engine, result.dataset.id)
    lines = pipes.geometry.values
    ends = np.vstack(
        [
            shapely.get_coordinates(shapely.get_point(lines, 0)),
            shapely.get_coordinates(shapely.get_point(lines, -1)),
        ]
    )
    distinct = len(np.unique(np.round(ends, 6), axis=0))
    assert len(stored) == distinct  # one node per place, never one per line end
    assert set(result.dataset.counts["nodes_by_kind"]) == {"derived"}
    assert result.dataset.qc["by_rule"]["orphan_point"] == 0

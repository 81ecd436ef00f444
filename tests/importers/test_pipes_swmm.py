"""SWMM import (through swmmio): counts per type, inverts/ground in metres, offsets, sections."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import swmmio
from pyproj import Transformer
from sqlalchemy import Engine

from tests.importers.pipes_helpers import PIPES, nodes, run, segments

FOOT = 0.3048


def _inp(name: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return swmmio.Model(str(PIPES / name)).inp


def _check_network(inp: Any, stored: dict[str, Any], links: dict[str, Any], scale: float) -> None:
    kinds = [n["kind"] for n in stored.values()]
    assert kinds.count("junction") == len(inp.junctions)
    assert kinds.count("storage") == len(inp.storage)
    assert kinds.count("outfall") == len(inp.outfalls)
    assert [s["link_type"] for s in links.values()].count("conduit") == len(inp.conduits)
    for frame, depth_column in ((inp.junctions, "MaxDepth"), (inp.storage, "MaxD")):
        for name, row in frame.iterrows():
            node = stored[str(name)]
            assert node["bottom_z"] == pytest.approx(row["InvertElev"] * scale, abs=1e-3)
            assert node["ground_z"] == pytest.approx(
                (row["InvertElev"] + row[depth_column]) * scale, abs=1e-3
            )
    for name, row in inp.outfalls.iterrows():
        assert stored[str(name)]["bottom_z"] == pytest.approx(row["InvertElev"] * scale, abs=1e-3)
    inverts = {str(k): v * scale for k, v in pd_inverts(inp).items()}
    for row in inp.conduits.itertuples():
        name = row.Index
        link = links[str(name)]
        assert (link["start"], link["end"]) == (str(row.InletNode), str(row.OutletNode))
        assert link["start_invert_z"] == pytest.approx(
            inverts[str(row.InletNode)] + row.InOffset * scale, abs=1e-3
        )
        assert link["end_invert_z"] == pytest.approx(
            inverts[str(row.OutletNode)] + row.OutOffset * scale, abs=1e-3
        )
        section = inp.xsections.loc[name]
        assert section["Shape"] == "CIRCULAR"
        assert link["section_shape"] == "circular"
        assert link["diameter_mm"] == pytest.approx(section["Geom1"] * scale * 1000, abs=1e-3)


def pd_inverts(inp: Any) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for frame in (inp.junctions, inp.storage, inp.outfalls):
        if len(frame):
            out.update(frame["InvertElev"].to_dict())
    return out


def test_example1_cfs_feet(engine: Engine, clean_tables: None) -> None:
    inp = _inp("swmm_Example1.inp")
    origin = (500_000.0, 3_400_000.0, 0.0)
    result = run(engine, PIPES / "swmm_Example1.inp", origin=origin)
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    _check_network(inp, stored, links, FOOT)
    for name, row in inp.coordinates.iterrows():
        assert stored[str(name)]["x"] == pytest.approx(origin[0] + row["X"], abs=1e-3)
        assert stored[str(name)]["y"] == pytest.approx(origin[1] + row["Y"], abs=1e-3)
    for name, group in inp.vertices.groupby(level=0):
        assert links[str(name)]["npoints"] == 2 + len(group)
    # centreline at invert + D/2 at the start vertex
    link = links["1"]
    first_z = float(link["wkt"].split("(")[1].split(",")[0].split()[2])
    assert first_z == pytest.approx(link["start_invert_z"] + link["diameter_mm"] / 2000, abs=1e-3)


def test_bellinge_storage_manholes_utm(engine: Engine, clean_tables: None) -> None:
    inp = _inp("swmm_bellinge_small.inp")
    result = run(engine, PIPES / "swmm_bellinge_small.inp", crs="EPSG:32632", utility="WS")
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    assert len(inp.storage) == 15
    _check_network(inp, stored, links, 1.0)
    assert {n["utility"] for n in stored.values()} == {"PS"}
    to_storage = Transformer.from_crs("EPSG:32632", "EPSG:4547", always_xy=True)
    names = [str(n) for n in inp.coordinates.index]
    xs, ys = to_storage.transform(inp.coordinates["X"].to_numpy(), inp.coordinates["Y"].to_numpy())
    got = np.array([[stored[n]["x"], stored[n]["y"]] for n in names])
    assert np.abs(got - np.column_stack([xs, ys])).max() < 1e-3
    assert result.dataset.qc["by_rule"]["orphan_point"] == 0

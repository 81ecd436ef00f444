"""Topology and 3D: link segments to nodes, derive elevations, build LINESTRING Z centrelines.

Elevations of a segment end, first that applies:
  1. the invert (管底) or top (管顶) elevation given by the source (top - section height = invert);
  2. ground - depth, with ground from the node (point table), else the terrain (ST_Value);
  3. ground - ``default_cover`` - section height (cover measured to the pipe top); a node
     without any ground borrows the mean ground of its neighbours for this.
The centreline sits at invert + height/2 and is interpolated along the vertices by distance.
A node's ground comes from the source, else the terrain; its point sits at ground level, else
at the crown of its highest pipe, else at its invert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from importers.pipes.network import Network

FloatArray = npt.NDArray[np.float64]
GroundLookup = Callable[[FloatArray, FloatArray], FloatArray]


@dataclass
class Placed:
    """A network ready to write: indexed ends, elevations, flat centreline coordinates."""

    nodes: pd.DataFrame  # + node_z (geometry z)
    segments: pd.DataFrame  # + start_index, end_index, length_m, z_source
    coords: FloatArray  # (M, 3) centreline vertices of every segment, concatenated
    offsets: npt.NDArray[np.int64]  # segment i owns coords[offsets[i]:offsets[i + 1]]
    z_sources: dict[str, int] = field(default_factory=dict)


def section_height_m(segments: pd.DataFrame) -> FloatArray:
    """Vertical size (m): height for rectangular sections, else diameter; 0 when unknown."""
    diameter = segments["diameter_mm"].to_numpy(dtype=np.float64)
    height = segments["height_mm"].to_numpy(dtype=np.float64)
    rect = (segments["section_shape"] == "rectangular").to_numpy()
    size = np.where(rect & np.isfinite(height), height, diameter)
    size = np.where(np.isfinite(size), size, np.where(np.isfinite(height), height, 0.0))
    return np.asarray(size, dtype=np.float64) / 1000.0


def sample_terrain(session: Session, srid: int) -> GroundLookup | None:
    """A ground lookup on imported terrain (finest DEM wins), or None when there is none."""
    present = session.execute(text("SELECT EXISTS (SELECT 1 FROM terrain_raster)")).scalar()
    if not present:
        return None

    def lookup(xs: FloatArray, ys: FloatArray) -> FloatArray:
        rows = session.execute(
            text(
                "SELECT p.ord, (SELECT ST_Value(r.rast, p.g) FROM terrain_raster r"
                "  WHERE ST_Intersects(r.rast, p.g) AND ST_Value(r.rast, p.g) IS NOT NULL"
                "  ORDER BY r.resolution LIMIT 1)"
                " FROM (SELECT ord, ST_SetSRID(ST_MakePoint(x, y), :srid) AS g"
                "       FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[]))"
                "       WITH ORDINALITY AS t(x, y, ord)) AS p"
            ),
            {"xs": xs.tolist(), "ys": ys.tolist(), "srid": srid},
        ).all()
        out = np.full(len(xs), np.nan)
        for ordinal, value in rows:
            if value is not None:
                out[int(ordinal) - 1] = float(value)
        return out

    return lookup


def index_ends(network: Network) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Node row of each segment's start and end (-1 where the code is not a node).

    A network cleaned by ``qc.check_source`` carries them already (``start_index`` and
    ``end_index``, as :func:`place` leaves them), so a million codes are looked up once.
    """
    segments = network.segments
    if "start_index" in segments.columns and "end_index" in segments.columns:
        return (
            segments["start_index"].to_numpy(dtype=np.int64),
            segments["end_index"].to_numpy(dtype=np.int64),
        )
    index = pd.Index(network.nodes["code"])
    start = index.get_indexer(network.segments["start"]).astype(np.int64)
    end = index.get_indexer(network.segments["end"]).astype(np.int64)
    return start, end


def place(network: Network, *, default_cover: float, ground: GroundLookup | None) -> Placed:
    """Elevations and centrelines for a network whose every segment end is a node."""
    # shallow: columns are replaced, never written in place (pandas copy-on-write)
    nodes = network.nodes.copy(deep=False)
    segments = network.segments.copy(deep=False)
    start, end = index_ends(network)
    assert (start >= 0).all() and (end >= 0).all(), "drop segments with missing nodes first"
    segments["start_index"] = start
    segments["end_index"] = end

    node_ground = nodes["ground_z"].to_numpy(dtype=np.float64).copy()
    if ground is not None and np.isnan(node_ground).any():
        missing = np.isnan(node_ground)
        xs = nodes["x"].to_numpy(dtype=np.float64)[missing]
        ys = nodes["y"].to_numpy(dtype=np.float64)[missing]
        node_ground[missing] = ground(xs, ys)
    nodes["ground_z"] = node_ground
    depth = nodes["depth"].to_numpy(dtype=np.float64)
    bottom = nodes["bottom_z"].to_numpy(dtype=np.float64)
    nodes["bottom_z"] = np.where(np.isnan(bottom), node_ground - depth, bottom)

    neighbour_ground = _neighbour_ground(node_ground, start, end)
    height = section_height_m(segments)
    z_sources: dict[str, int] = {}
    source_per_end: list[npt.NDArray[np.object_]] = []
    for name, idx in (("start", start), ("end", end)):
        invert = segments[f"{name}_invert"].to_numpy(dtype=np.float64).copy()
        top = segments[f"{name}_top"].to_numpy(dtype=np.float64)
        end_depth = segments[f"{name}_depth"].to_numpy(dtype=np.float64)
        ground_at = node_ground[idx]
        by_top = segments["depth_ref"].to_numpy() == "top"
        origin = np.full(len(invert), None, dtype=object)
        origin[np.isfinite(invert)] = "elevation"
        fill = np.isnan(invert) & np.isfinite(top)
        invert[fill] = top[fill] - height[fill]
        origin[fill] = "elevation"
        from_depth = ground_at - end_depth - np.where(by_top, height, 0.0)
        fill = np.isnan(invert) & np.isfinite(from_depth)
        invert[fill] = from_depth[fill]
        origin[fill] = "depth"
        from_cover = ground_at - default_cover - height
        fill = np.isnan(invert) & np.isfinite(from_cover)
        invert[fill] = from_cover[fill]
        origin[fill] = "default_cover"
        from_neighbours = neighbour_ground[idx] - default_cover - height
        fill = np.isnan(invert) & np.isfinite(from_neighbours)
        invert[fill] = from_neighbours[fill]
        origin[fill] = "neighbour_ground"
        fill = np.isnan(invert)
        invert[fill] = -default_cover - height[fill]
        origin[fill] = "no_ground"
        segments[f"{name}_invert"] = invert
        segments[f"{name}_top"] = invert + height
        source_per_end.append(origin)
        # counted by hashing: sorting a million strings (np.unique) cost 0.2 s per end
        counted = pd.Series(origin, dtype=object).value_counts(dropna=False)
        for key, count in sorted(counted.items(), key=lambda item: str(item[0])):
            z_sources[str(key)] = z_sources.get(str(key), 0) + int(count)
    segments["z_source"] = [
        a if a == b else f"{a}/{b}" for a, b in zip(*source_per_end, strict=True)
    ]

    coords, offsets = centrelines(nodes, segments, height)
    segments["length_m"] = lengths_3d(coords, offsets)

    crown = np.full(len(nodes), -np.inf)
    np.maximum.at(crown, start, segments["start_top"].to_numpy(dtype=np.float64))
    np.maximum.at(crown, end, segments["end_top"].to_numpy(dtype=np.float64))
    crown[np.isinf(crown)] = np.nan
    node_z = np.where(np.isfinite(node_ground), node_ground, crown)
    bottom = nodes["bottom_z"].to_numpy(dtype=np.float64)
    node_z = np.where(np.isfinite(node_z), node_z, bottom)
    nodes["node_z"] = np.where(np.isfinite(node_z), node_z, 0.0)
    return Placed(
        nodes=nodes, segments=segments, coords=coords, offsets=offsets, z_sources=z_sources
    )


def _neighbour_ground(ground: FloatArray, start: Any, end: Any) -> FloatArray:
    """Mean ground of the adjacent nodes, for nodes that have none (an EPANET reservoir)."""
    total = np.zeros(len(ground))
    count = np.zeros(len(ground))
    for here, there in ((start, end), (end, start)):
        known = np.isfinite(ground[there])
        np.add.at(total, here[known], ground[there][known])
        np.add.at(count, here[known], 1)
    out: FloatArray = np.divide(total, count, out=np.full(len(ground), np.nan), where=count > 0)
    return out


def centrelines(
    nodes: pd.DataFrame, segments: pd.DataFrame, height: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Flat (M, 3) coordinates: start node, interior vertices, end node; z by distance."""
    n = len(segments)
    node_x = nodes["x"].to_numpy(dtype=np.float64)
    node_y = nodes["y"].to_numpy(dtype=np.float64)
    start = segments["start_index"].to_numpy()
    end = segments["end_index"].to_numpy()
    vertices = segments["vertices"].to_numpy()
    inner = np.fromiter((0 if v is None else len(v) for v in vertices), dtype=np.int64, count=n)
    sizes = inner + 2
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    total = int(offsets[-1])
    xy = np.empty((total, 2), dtype=np.float64)
    xy[offsets[:-1], 0] = node_x[start]
    xy[offsets[:-1], 1] = node_y[start]
    xy[offsets[1:] - 1, 0] = node_x[end]
    xy[offsets[1:] - 1, 1] = node_y[end]
    for i in np.flatnonzero(inner):
        xy[offsets[i] + 1 : offsets[i + 1] - 1] = np.asarray(vertices[i], dtype=np.float64)
    owner = np.repeat(np.arange(n), sizes)
    step = np.zeros(total)
    step[1:] = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1]))
    step[offsets[:-1]] = 0.0
    run = np.cumsum(step)
    run -= run[offsets[:-1]][owner]
    span = run[offsets[1:] - 1]
    fraction = np.divide(run, span[owner], out=np.zeros(total), where=span[owner] > 0)
    z_start = segments["start_invert"].to_numpy(dtype=np.float64) + height / 2
    z_end = segments["end_invert"].to_numpy(dtype=np.float64) + height / 2
    z = z_start[owner] + (z_end - z_start)[owner] * fraction
    return np.column_stack([xy, z]), offsets


def lengths_3d(coords: FloatArray, offsets: npt.NDArray[np.int64]) -> FloatArray:
    """3D length of every segment from the flat coordinates."""
    if len(offsets) <= 1:
        return np.zeros(0)
    step = np.zeros(len(coords))
    step[1:] = np.linalg.norm(np.diff(coords, axis=0), axis=1)
    step[offsets[:-1]] = 0.0
    run = np.cumsum(step)
    return np.asarray(run[offsets[1:] - 1] - run[offsets[:-1]], dtype=np.float64)


def degrees(node_count: int, start: Any, end: Any) -> npt.NDArray[np.int64]:
    """Number of segment ends at each node."""
    degree = np.zeros(node_count, dtype=np.int64)
    np.add.at(degree, np.asarray(start, dtype=np.int64), 1)
    np.add.at(degree, np.asarray(end, dtype=np.int64), 1)
    return degree

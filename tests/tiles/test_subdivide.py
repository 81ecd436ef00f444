"""Unit checks of the quadtree (honest errors, each feature once, budgets) and of pipe solids."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiles.checks import read_glb
from tiles.gltf import FeatureTable, PropertyColumn, encode_glb
from tiles.pipes import prisms, sides_for
from tiles.subdivide import FeatureIndex, TileNode, subdivide


def _random_index(count: int, seed: int = 3) -> FeatureIndex:
    rng = np.random.default_rng(seed)
    lower = np.column_stack([rng.uniform(0, 2000, (count, 2)), rng.uniform(0, 10, count)])
    size = rng.pareto(1.5, (count, 3)) * 3 + 0.5  # many small features, a few large ones
    boxes = np.column_stack([lower, lower + size])
    return FeatureIndex(np.arange(1, count + 1), boxes, rng.integers(12, 400, count))


def _below(node: TileNode) -> np.ndarray:
    parts = [child.rows for child in node.children] + [_below(c) for c in node.children]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def test_every_feature_once_and_errors_are_what_children_hold() -> None:
    index = _random_index(5000)
    root = subdivide(index, max_triangles=5000)
    nodes = root.walk()
    assert len(nodes) > 10
    rows = np.concatenate([n.rows for n in nodes])
    assert np.array_equal(np.sort(rows), np.arange(len(index)))
    size = index.size
    for node in nodes:
        below = _below(node)
        expected = float(size[below].max()) if below.size else 0.0
        assert node.geometric_error == pytest.approx(expected)
        weight = int(index.triangles[node.rows].sum())
        assert weight <= (5000 // 2 if node.children else 5000)
        for child in node.children:
            assert child.geometric_error <= node.geometric_error
            assert (child.box[:3] >= node.box[:3]).all() and (child.box[3:] <= node.box[3:]).all()
        # what a tile keeps is at least as large as anything it hands down (ADD by size)
        if node.rows.size and below.size:
            assert size[node.rows].min() >= size[below].max()


def test_coincident_features_stop_splitting() -> None:
    boxes = np.tile([10.0, 10.0, 0.0, 11.0, 11.0, 1.0], (300, 1))
    index = FeatureIndex(np.arange(300), boxes, np.full(300, 12))
    root = subdivide(index, max_triangles=100)
    assert root.children == [] and root.rows.size == 300  # nothing to separate them by


def test_empty_index_gives_an_empty_root() -> None:
    empty = FeatureIndex(np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros(0, np.int64))
    assert subdivide(empty).rows.size == 0


def test_prisms_are_closed_outward_tubes_and_boxes() -> None:
    start = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0]])
    end = np.array([[10.0, 0.0, 1.0], [5.0, 5.0, 3.0]])  # sloped pipe and a vertical shaft
    radius = np.array([0.3, 0.5])
    for sides in (6, 12):
        solids = prisms(start, end, radius, radius, sides)
        assert solids.shape == (2, 4 * sides - 4, 3, 3)
        for k in range(2):
            axis = (end[k] - start[k]) / np.linalg.norm(end[k] - start[k])
            points = solids[k].reshape(-1, 3)
            along = (points - start[k]) @ axis
            radial = np.linalg.norm(points - start[k] - np.outer(along, axis), axis=1)
            assert np.allclose(radial, radius[k])
            centroid = solids[k].mean(axis=1)
            normal = np.cross(solids[k][:, 1] - solids[k][:, 0], solids[k][:, 2] - solids[k][:, 0])
            # a prism is convex: every outward face normal points away from its centre
            outward = centroid - (start[k] + end[k]) / 2
            assert ((normal * outward).sum(axis=1) > 0).all()  # wound outward
    box = prisms(start[:1], end[:1], np.array([0.4]), np.array([0.3]), 4)
    corners = box[0].reshape(-1, 3)
    axis = (end[0] - start[0]) / np.linalg.norm(end[0] - start[0])
    along = (corners - start[0]) @ axis
    radial = np.linalg.norm(corners - start[0] - np.outer(along, axis), axis=1)
    assert np.allclose(radial, 0.5)  # corners of 0.8 x 0.6 lie at the half diagonal


def test_side_count_follows_diameter_and_level() -> None:
    assert [sides_for(d, leaf=True) for d in (100, 300, 600, 1500)] == [6, 8, 12, 16]
    assert [sides_for(d, leaf=False) for d in (100, 300, 600, 1500)] == [6, 8, 8, 8]


def test_property_table_round_trips_through_glb() -> None:
    table = FeatureTable(
        "s",
        "c",
        3,
        [
            PropertyColumn("name", "STRING", ["a", None, "渠"]),
            PropertyColumn("year", "UINT16", [1990, None, 2024]),
            PropertyColumn("depth", "FLOAT32", [1.5, None, 0.25]),
            PropertyColumn("empty", "STRING", [None, None, None]),
        ],
    )
    document, _ = read_glb(encode_glb([], table))
    metadata = document["extensions"]["EXT_structural_metadata"]
    assert metadata["propertyTables"][0]["count"] == 3
    assert "empty" not in metadata["propertyTables"][0]["properties"]  # no 0-byte bufferView
    for view in document["bufferViews"]:
        assert view["byteOffset"] % 8 == 0 and view["byteLength"] > 0


def test_fast_wkb_reader_equals_shapely_and_falls_back() -> None:
    import shapely

    from tiles.buildings import _triangles_from_iso_wkb, triangles_from_wkb

    rng = np.random.default_rng(5)
    meshes = [
        shapely.MultiPolygon(
            [shapely.Polygon(rng.normal(size=(3, 3))) for _ in range(rng.integers(1, 9))]
        )
        for _ in range(50)
    ]
    blobs = [shapely.to_wkb(m, flavor="iso") for m in meshes]
    triangles, owner = _triangles_from_iso_wkb(blobs) or (None, None)
    assert triangles is not None and owner is not None
    for k, mesh in enumerate(meshes):
        expected = shapely.get_coordinates(mesh, include_z=True).reshape(-1, 4, 3)[:, :3]
        assert np.array_equal(triangles[owner == k], expected)
    quad = shapely.MultiPolygon([shapely.Polygon([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)])])
    assert _triangles_from_iso_wkb([*blobs, shapely.to_wkb(quad, flavor="iso")]) is None
    fan, fan_owner = triangles_from_wkb([shapely.to_wkb(quad, flavor="iso")])
    assert fan.shape == (2, 3, 3) and fan_owner.tolist() == [0, 0]


def test_zero_length_pieces_and_heightless_nodes_write_no_nan() -> None:
    """KY4's pump inlet and outlet coincide: such pieces are left out, never NaN positions."""
    import shapely

    from tiles.content import TileFrame
    from tiles.pipes import MeshParts, _node_solids, _segment_solids

    frame = TileFrame.at(32616, 684000.0, 4190000.0, 200.0)
    zero = shapely.to_wkb(shapely.LineString([(684000, 4190000, 199), (684000, 4190000, 199)]))
    real = shapely.to_wkb(shapely.LineString([(684000, 4190000, 199), (684010, 4190000, 199)]))
    row = (1, zero, "P0", "JS", None, "pipe", "circular", 200.0, None, None, "PE", 2000, 1.0, "d")
    parts = MeshParts()
    _segment_solids(parts, [row, (2, real, *row[2:])], frame, True)
    triangles = np.concatenate(parts.triangles)
    assert np.isfinite(triangles).all()
    assert set(np.concatenate(parts.feature_ids).tolist()) == {1.0}  # only the real pipe
    # a well of zero depth and a device without a centre height
    nodes = [
        (
            3,
            None,
            "W",
            "PS",
            None,
            "manhole",
            None,
            684000.0,
            4190000.0,
            200.0,
            200.0,
            200.0,
            True,
            199.0,
        ),
        (
            4,
            None,
            "V",
            "JS",
            None,
            "valve",
            None,
            684001.0,
            4190000.0,
            200.0,
            200.0,
            None,
            False,
            None,
        ),
    ]
    node_parts = MeshParts()
    _node_solids(node_parts, nodes, frame, first_id=0)
    assert not node_parts.triangles or np.isfinite(np.concatenate(node_parts.triangles)).all()

"""Tile content assembly shared by the layers: local ENU frames, normals, colours, glb/b3dm bytes.

Every tile has its own east-north-up frame at the centre of its content: vertices are exact
storage->ECEF (pyproj) transforms expressed in that frame, so float32 keeps sub-millimetre
precision, and the tile's ``transform`` takes the frame to ECEF (EPSG:4978), the same
conversion the terrain layer uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

from cim.crs import ECEF, WGS84_3D, enu_to_ecef_matrix, transformer
from tiles.b3dm import encode_b3dm
from tiles.compression import compress_glb
from tiles.gltf import FeatureTable, Primitive, encode_glb, srgb_to_linear

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TileFrame:
    """A local ENU frame: ``matrix`` maps frame metres to ECEF."""

    storage_srid: int
    matrix: FloatArray

    @classmethod
    def at(cls, storage_srid: int, x: float, y: float, z: float) -> TileFrame:
        """The ENU frame whose origin is the storage point (x, y, z)."""
        lon, lat = _transformers(storage_srid)[0].transform(x, y)
        return cls(storage_srid, enu_to_ecef_matrix(float(lon), float(lat), float(z)))

    def to_local(self, points: FloatArray) -> FloatArray:
        """(n, 3) storage coordinates -> (n, 3) metres in this frame (float64)."""
        if points.shape[0] == 0:
            return np.zeros((0, 3))
        to_lonlat, to_ecef = _transformers(self.storage_srid)
        lon, lat = to_lonlat.transform(points[:, 0], points[:, 1])
        x, y, z = to_ecef.transform(lon, lat, points[:, 2])
        return _ecef_to_enu(self.matrix, x, y, z)

    def lift(self, xy: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(k, 2) storage points -> (f, g), each (k, 3), such that the point at height h is
        ``f + h * g`` in this frame, exactly: geodetic -> ECEF is linear in the ellipsoidal
        height, along the ellipsoid's normal (X = (N + h) cos(lat) cos(lon), ...).

        For points that stand at several heights (a block's footprint at its base and top):
        PROJ then transforms each (x, y) once, at h = 0, instead of once per height.
        """
        if xy.shape[0] == 0:
            return np.zeros((0, 3)), np.zeros((0, 3))
        to_lonlat, to_ecef = _transformers(self.storage_srid)
        lon, lat = to_lonlat.transform(xy[:, 0], xy[:, 1])
        x, y, z = to_ecef.transform(lon, lat, np.zeros(xy.shape[0]))
        lon, lat = np.radians(lon), np.radians(lat)
        cos_lat = np.cos(lat)
        normal = np.column_stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)])
        rotation = self.matrix[:3, :3]
        turned = np.empty_like(normal)
        for axis in range(3):  # per component, as _ecef_to_enu (no BLAS threads)
            turned[:, axis] = (
                normal[:, 0] * rotation[0, axis]
                + normal[:, 1] * rotation[1, axis]
                + normal[:, 2] * rotation[2, axis]
            )
        return _ecef_to_enu(self.matrix, x, y, z), turned

    def triangles_to_local(self, triangles: FloatArray) -> FloatArray:
        """(m, 3, 3) storage triangles -> the same in this frame, each distinct (x, y) among
        their corners transformed once (:meth:`lift`): a mesh's neighbouring triangles share
        corners, and a building's walls stand on the points of its roof and floor (a LOD1
        block's 36 corners have 4 distinct (x, y))."""
        corners = triangles.reshape(-1, 3)
        if corners.shape[0] == 0:
            return np.zeros((0, 3, 3))
        keys = corners[:, 0] + 1j * corners[:, 1]  # one sortable value per (x, y)
        distinct, where = np.unique(keys, return_inverse=True)
        flat, up = self.lift(np.column_stack([distinct.real, distinct.imag]))
        out: FloatArray = (flat[where] + corners[:, 2:3] * up[where]).reshape(-1, 3, 3)
        return out


def _ecef_to_enu(matrix: FloatArray, x: FloatArray, y: FloatArray, z: FloatArray) -> FloatArray:
    """:func:`cim.crs.ecef_to_enu` written out per component: a (n, 3) @ (3, 3) product goes
    through BLAS, whose threads, on a loaded machine, took 0.3-0.7 s for 600k points that
    this does in ~20 ms (measured on the 2-core build machine under load 6)."""
    rotation, origin = matrix[:3, :3], matrix[:3, 3]
    dx, dy, dz = x - origin[0], y - origin[1], z - origin[2]
    out = np.empty((dx.shape[0], 3))
    for axis in range(3):
        out[:, axis] = dx * rotation[0, axis] + dy * rotation[1, axis] + dz * rotation[2, axis]
    return out


@lru_cache(maxsize=8)
def _transformers(storage_srid: int) -> tuple[Transformer, Transformer]:
    """The two steps of :func:`cim.crs.storage_to_ecef` (Z as ellipsoidal height), looked up
    once per SRID. (A single storage-3D -> ECEF pipeline transforms a third faster but takes
    PROJ ~3 s to find, which small builds would pay every time.)"""
    return transformer(storage_srid, 4326), transformer(WGS84_3D, ECEF)


@dataclass
class SharedMesh:
    """Opaque triangles (ENU, z up) of one colour that share their vertices: ``triangles``
    index ``vertices``, each vertex has its feature id. Every triangle at a vertex lies in one
    plane (a block's roof, one wall), so the vertex takes the triangles' flat normal; without
    ``normals`` none is stored and the client draws the mesh unlit (roofs seen from afar)."""

    vertices: FloatArray
    triangles: npt.NDArray[np.int64]
    feature_ids: npt.NDArray[np.float32]
    rgba: npt.NDArray[np.uint8]
    normals: bool = True


@dataclass
class MeshParts:
    """Triangles (ENU, z up) of a tile split into opaque and transparent parts, and meshes of
    shared vertices (:class:`SharedMesh`)."""

    triangles: list[FloatArray] = field(default_factory=list)
    colors: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    feature_ids: list[npt.NDArray[np.float32]] = field(default_factory=list)
    shared: list[SharedMesh] = field(default_factory=list)

    def add(self, triangles: FloatArray, rgba: npt.NDArray[np.uint8], feature_id: int) -> None:
        """``triangles`` (m, 3, 3) of one feature, coloured ``rgba`` (4,) or (m, 4)."""
        if triangles.shape[0] == 0:
            return
        self.triangles.append(triangles)
        self.colors.append(np.broadcast_to(rgba, (triangles.shape[0], 4)))
        self.feature_ids.append(np.full(triangles.shape[0], feature_id, dtype=np.float32))

    @property
    def triangle_count(self) -> int:
        shared = sum(int(mesh.triangles.shape[0]) for mesh in self.shared)
        return shared + sum(int(t.shape[0]) for t in self.triangles)

    def primitives(self) -> list[Primitive]:
        """Up to two primitives (opaque, blended) with flat normals, in glTF y-up axes, then
        one per shared mesh."""
        shared = [_shared_primitive(mesh) for mesh in self.shared if mesh.triangles.size]
        if not self.triangles:
            return shared
        triangles = np.concatenate(self.triangles)
        colors = np.concatenate(self.colors)
        ids = np.concatenate(self.feature_ids)
        out = []
        blended = colors[:, 3] < 255
        for blend in (False, True):
            pick = blended if blend else ~blended
            if pick.any():
                out.append(_primitive(triangles[pick], colors[pick], ids[pick], blend))
        return out + shared


def _primitive(
    triangles: FloatArray,
    colors: npt.NDArray[np.uint8],
    ids: npt.NDArray[np.float32],
    blend: bool,
) -> Primitive:
    normals = _unit_normals(triangles)
    return Primitive(
        positions=_to_gltf(triangles.reshape(-1, 3)),
        normals=np.repeat(_to_gltf(normals), 3, axis=0),
        colors=np.repeat(colors, 3, axis=0).astype(np.uint8),
        feature_ids=np.repeat(ids, 3),
        blend=blend,
    )


def _unit_normals(corners: FloatArray) -> FloatArray:
    """(m, 3) unit normals of (m, 3, 3) triangles (counter-clockwise faces out); a zero-area
    triangle draws nothing and gets (0, 0, 1). The cross product is written per component
    (``np.cross`` moves axes around for the same products)."""
    a, b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    normals = np.empty_like(a)
    normals[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    normals[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    normals[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    length = np.linalg.norm(normals, axis=1)
    degenerate = length < 1e-12
    normals[degenerate] = (0.0, 0.0, 1.0)
    length[degenerate] = 1.0
    normals /= length[:, None]
    return normals


def _to_gltf(enu: FloatArray) -> npt.NDArray[np.float32]:
    """ENU (x east, y north, z up) -> glTF (x, y up, z = -north) in float32; 3D Tiles rotates
    back. Written per component: a column gather, a product and a cast each copied the
    vertices (a tenth of the encoding of a city's blocks)."""
    out = np.empty((enu.shape[0], 3), dtype=np.float32)
    out[:, 0] = enu[:, 0]
    out[:, 1] = enu[:, 2]
    np.negative(enu[:, 1], out=out[:, 2], casting="same_kind")
    return out


def _shared_primitive(mesh: SharedMesh) -> Primitive:
    normals = None
    if mesh.normals:
        flat = _unit_normals(mesh.vertices[mesh.triangles])
        by_vertex = np.zeros_like(mesh.vertices)
        by_vertex[:, 2] = 1.0
        # coplanar at each vertex: any of its triangles' normal (corner by corner, the last wins)
        by_vertex[mesh.triangles.T.reshape(-1)] = np.tile(flat, (3, 1))
        normals = _to_gltf(by_vertex)
    return Primitive(
        positions=_to_gltf(mesh.vertices),
        normals=normals,
        colors=None,
        feature_ids=mesh.feature_ids.astype(np.float32),
        indices=mesh.triangles,
        colour=(int(mesh.rgba[0]), int(mesh.rgba[1]), int(mesh.rgba[2]), int(mesh.rgba[3])),
    )


def rgba_bytes(rgba: tuple[float, ...] | list[float]) -> npt.NDArray[np.uint8]:
    """sRGB colour (0..1, alpha) -> linear RGBA bytes for ``COLOR_0`` (cached: few colours)."""
    return _rgba_bytes(tuple(float(v) for v in rgba))


@lru_cache(maxsize=4096)
def _rgba_bytes(rgba: tuple[float, ...]) -> npt.NDArray[np.uint8]:
    rgb = srgb_to_linear(np.clip(np.asarray(rgba[:3], dtype=np.float64), 0.0, 1.0))
    alpha = min(max(rgba[3], 0.0), 1.0) if len(rgba) > 3 else 1.0
    out = np.round(np.append(rgb, alpha) * 255).astype(np.uint8)
    out.flags.writeable = False  # shared between callers
    return out


def encode_tile(
    parts: MeshParts, features: FeatureTable, *, spec: str, compress: bool = False
) -> bytes:
    """The content file of one tile: glb (3D Tiles 1.1) or b3dm (1.0); ``compress``:
    meshopt-encoded, normals quantized (:mod:`tiles.compression`)."""
    primitives = parts.primitives()
    if spec == "1.0":
        glb = encode_glb(primitives, None, batch_ids=True)
        return encode_b3dm(compress_glb(glb) if compress else glb, features)
    glb = encode_glb(primitives, features)
    return compress_glb(glb) if compress else glb

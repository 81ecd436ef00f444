"""The format-neutral pipe network every reader produces, and where its coordinates go.

Readers (CJJ 61 tables, GIS layers, EPANET, SWMM) each turn a source into a :class:`Network`:
two pandas frames in the storage CRS with metres everywhere, so topology, 3D placement, QC and
the COPY writer are written once. Columns a reader does not know stay NaN/None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pyproj import CRS

from cim.crs import crs_label, parse_crs, to_storage, transformer
from cim.errors import ImportFailed, InvalidInput, UnsupportedCRS

NODE_COLUMNS: dict[str, Any] = {
    "code": "object",  # unique per network; segments reference it
    "x": "float64",  # storage CRS
    "y": "float64",
    "ground_z": "float64",  # ground / cover level (m)
    "bottom_z": "float64",  # well bottom or node invert (m)
    "depth": "float64",  # well bottom depth below ground (m), CJJ 61 井底埋深
    "kind": "object",  # junction, valve, hydrant, manhole, tee, reservoir, tank, outfall ...
    "feature": "object",  # CJJ 61 特征
    "appurtenance": "object",  # CJJ 61 附属物
    "utility": "object",
    "subclass": "object",
    "valve_state": "object",
    "attrs": "object",  # dict or None
}
SEGMENT_COLUMNS: dict[str, Any] = {
    "code": "object",
    "start": "object",  # node codes
    "end": "object",
    "start_invert": "float64",  # elevations (m)
    "end_invert": "float64",
    "start_top": "float64",
    "end_top": "float64",
    "start_depth": "float64",  # depths below ground (m), to invert or top per depth_ref
    "end_depth": "float64",
    "depth_ref": "object",  # "invert" | "top"
    "section_shape": "object",  # circular | rectangular | other
    "diameter_mm": "float64",
    "width_mm": "float64",
    "height_mm": "float64",
    "link_type": "object",  # pipe, conduit, pump, valve, orifice, weir, outlet, cable ...
    "material": "object",
    "pressure": "object",
    "voltage": "object",
    "cable_count": "float64",
    "hole_total": "float64",
    "hole_used": "float64",
    "burial": "object",
    "owner": "object",
    "year": "float64",
    "utility": "object",
    "subclass": "object",
    "attrs": "object",
    "vertices": "object",  # None or (k, 2) array of interior vertices, storage CRS
}


def frame(columns: dict[str, Any], data: dict[str, Any], length: int) -> pd.DataFrame:
    """A frame with exactly ``columns`` (missing ones filled with NaN/None) from ``data``."""
    out: dict[str, Any] = {}
    for name, dtype in columns.items():
        if name in data:
            value = data[name]
            out[name] = (
                pd.to_numeric(pd.Series(value), errors="coerce").astype("float64").to_numpy()
                if dtype == "float64"
                else pd.Series(value, dtype="object").to_numpy()
            )
        elif dtype == "float64":
            out[name] = np.full(length, np.nan)
        else:
            out[name] = np.full(length, None, dtype=object)
    return pd.DataFrame(out, index=pd.RangeIndex(length))


def node_frame(length: int, **data: Any) -> pd.DataFrame:
    """A node frame of ``length`` rows; keyword arguments are columns (arrays or scalars)."""
    return frame(NODE_COLUMNS, _broadcast(data, length), length)


def segment_frame(length: int, **data: Any) -> pd.DataFrame:
    """A segment frame of ``length`` rows; keyword arguments are columns (arrays or scalars)."""
    return frame(SEGMENT_COLUMNS, _broadcast(data, length), length)


def _broadcast(data: dict[str, Any], length: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or isinstance(value, str | int | float):
            out[key] = [value] * length
        else:
            out[key] = value
    return out


@dataclass
class Network:
    """One source's nodes and segments, in the storage CRS and metres."""

    nodes: pd.DataFrame
    segments: pd.DataFrame
    source_format: str
    source_crs: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    counts_by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    #: what a writer needs to rebuild the source beyond nodes and links (EPANET: options,
    #: patterns, curves, controls), kept in ``dataset.options["source_model"]``
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = self.nodes.reset_index(drop=True)
        self.segments = self.segments.reset_index(drop=True)


@dataclass(frozen=True)
class Placement:
    """Where source coordinates go: source CRS, local origin offset and the storage SRID.

    ``--origin E,N[,H]`` places local plane coordinates (EPANET/SWMM drawings, shifted GIS
    layers): the stored position is ``(E + x, N + y)`` in the source CRS (``--crs``, else the
    storage CRS), and ``H`` is added to every elevation.
    """

    storage_srid: int
    crs: CRS | None = None
    origin: tuple[float, float, float] | None = None

    @property
    def height_offset(self) -> float:
        return self.origin[2] if self.origin else 0.0

    def source_crs(self, declared: CRS | str | None, *, what: str) -> CRS:
        """The CRS to read ``what`` in: --crs, else the file's own, else storage with --origin."""
        if self.crs is not None:
            return self.crs
        if declared is not None:
            return parse_crs(declared)
        if self.origin is not None:
            return parse_crs(self.storage_srid)
        raise UnsupportedCRS(
            f"{what} declares no coordinate reference system: give --crs EPSG:xxxx (and --origin "
            "E,N if its coordinates are local plane coordinates)"
        )

    def to_storage(
        self, source: CRS, x: npt.ArrayLike, y: npt.ArrayLike, *, what: str
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Source x/y (after the origin shift) -> storage x/y, refusing NaN and far-off points."""
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        if self.origin is not None:
            xs = xs + self.origin[0]
            ys = ys + self.origin[1]
        if xs.size == 0:
            return xs, ys
        _check_area_of_use(source, xs, ys, what=what, has_origin=self.origin is not None)
        tx, ty, _ = to_storage(source, self.storage_srid, xs, ys)
        return tx, ty


def _check_area_of_use(
    source: CRS,
    xs: npt.NDArray[np.float64],
    ys: npt.NDArray[np.float64],
    *,
    what: str,
    has_origin: bool,
) -> None:
    """Local drawing coordinates read as a real CRS land nowhere near it: say so, plainly."""
    area = source.area_of_use
    if area is None:
        return
    lon, lat = transformer(source, 4326).transform(
        np.array([xs.min(), xs.max()]), np.array([ys.min(), ys.max()])
    )
    lon = np.asarray(lon)
    lat = np.asarray(lat)
    margin = 2.0  # degrees: areas of use are administrative, data may spill over a border
    inside = (
        np.all(np.isfinite(lon))
        and np.all(np.isfinite(lat))
        and lon.min() >= area.west - margin
        and lon.max() <= area.east + margin
        and lat.min() >= area.south - margin
        and lat.max() <= area.north + margin
    )
    if not inside:
        hint = (
            "check --origin"
            if has_origin
            else "if these are local plane coordinates give --origin E,N (and --crs)"
        )
        raise UnsupportedCRS(
            f"{what}: coordinates x {xs.min():.2f}..{xs.max():.2f}, y {ys.min():.2f}.."
            f"{ys.max():.2f} fall outside the area of use of {crs_label(source)} "
            f"({area.name}); {hint}"
        )


def require_finite_coordinates(
    codes: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike, *, what: str
) -> None:
    """NaN or empty coordinates are an error naming the first offending rows (nothing stored)."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    bad = ~(np.isfinite(xs) & np.isfinite(ys))
    if bad.any():
        names = [str(c) for c in np.asarray(codes, dtype=object)[bad][:10]]
        more = f" and {int(bad.sum()) - len(names)} more" if bad.sum() > len(names) else ""
        raise ImportFailed(
            f"{what}: {int(bad.sum())} point(s) have empty or non-numeric coordinates: "
            f"{', '.join(names)}{more}"
        )


def to_float(values: Any, *, what: str, column: str) -> npt.NDArray[np.float64]:
    """A numeric column; text that is not a number is an error naming the first such value."""
    series = pd.Series(values, dtype="object")
    blank = series.isna() | (series.astype(str).str.strip() == "")
    parsed = pd.to_numeric(series.where(~blank, None), errors="coerce")
    wrong = parsed.isna() & ~blank
    if wrong.any():
        first = series[wrong].iloc[0]
        raise InvalidInput(f"{what}: column {column!r} holds {first!r}, which is not a number")
    return np.asarray(parsed.to_numpy(dtype=np.float64), dtype=np.float64)


def clean_text(value: Any) -> str | None:
    """Strip text; empty, NaN and None become None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None

"""GIS layers (GeoJSON, GeoPackage, Shapefile via pyogrio) -> Network.

All files given together form one network: line layers are the segments, point layers
(optional) the nodes. Segments find their nodes by start/end code fields when the line layer
has them (``junc_in``/``junc_out``, ``from``/``to``, 起点号/终点号 ...); otherwise each line end
snaps to the nearest point within ``snap_tolerance`` (mapping file, default 0.01 m), and ends
near no point are merged with each other into shared *derived* nodes - never duplicated.
Fields are matched by the built-in names or the mapping file; other fields become attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from cim.crs import crs_label
from cim.errors import ImportFailed, InvalidInput
from cim.utilities import is_gravity, resolve_utility
from importers.pipes.mapping import DIAMETER_UNITS, Mapping, resolve_headers, translate_values
from importers.pipes.network import (
    Network,
    Placement,
    clean_text,
    node_frame,
    segment_frame,
    to_float,
)
from importers.pipes.vocabulary import node_kind, parse_year, valve_state

LAYER_KINDS = {
    "junction": "junction",
    "outfall": "outfall",
    "valve": "valve",
    "manhole": "manhole",
    "hydrant": "hydrant",
    "tank": "tank",
    "reservoir": "reservoir",
    "storage": "storage",
    "pump": "pump",
}


def _layers(paths: list[Path]) -> list[tuple[str, Any]]:
    import pyogrio  # heavy: imported only when GIS layers are read

    # Shapefiles copied without their .shx index are common; GDAL can rebuild it.
    pyogrio.set_gdal_config_options({"SHAPE_RESTORE_SHX": "YES"})
    out = []
    for path in paths:
        try:
            names = [str(row[0]) for row in pyogrio.list_layers(path)]
            for layer in names:
                frame = pyogrio.read_dataframe(path, layer=layer)
                label = path.name if len(names) == 1 else f"{path.name}:{layer}"
                out.append((label, frame))
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise ImportFailed(f"{path.name}: not a readable GIS layer: {exc}") from None
    return out


def read_gis(
    paths: list[Path], *, placement: Placement, mapping: Mapping, utility: str | None
) -> Network:
    """Read line and point layers into one network (see module docstring)."""
    lines, points = [], []
    for label, frame in _layers(paths):
        types = set(
            shapely.get_type_id(
                frame.geometry.values.to_numpy()
                if hasattr(frame.geometry.values, "to_numpy")
                else np.asarray(frame.geometry.values)
            )
        )
        if types <= {1, 5}:
            lines.append((label, frame))
        elif types <= {0, 4}:
            points.append((label, frame))
        else:
            raise InvalidInput(f"{label}: layers must hold lines or points, not polygons/mixed")
    if not lines:
        raise InvalidInput(f"{', '.join(p.name for p in paths)}: no line layer (the pipes)")
    crs = _layer_crs(lines[0][0], lines[0][1], placement, mapping)
    chosen = utility or mapping.utility
    cls = resolve_utility(chosen) if chosen else _utility_from_name(lines[0][0])
    nodes = [_points(label, frame, placement, mapping, cls) for label, frame in points]
    node_table = pd.concat(nodes, ignore_index=True) if nodes else node_frame(0)
    segments, derived, warnings = _lines(lines, node_table, placement, mapping, cls)
    node_table = pd.concat([node_table, derived], ignore_index=True)
    return Network(
        nodes=node_table,
        segments=segments,
        source_format="gis",
        source_crs=crs_label(crs),
        units={"length": "m", "diameter": "mm"},
        warnings=warnings,
        counts_by_type={"layers": {label: len(f) for label, f in lines + points}},
    )


def _layer_crs(label: str, frame: Any, placement: Placement, mapping: Mapping) -> Any:
    """Each layer in its own CRS: --crs, else the mapping's, else the layer's declared one."""
    declared = mapping.crs or (frame.crs.to_wkt() if frame.crs is not None else None)
    return placement.source_crs(declared, what=label)


def _utility_from_name(label: str) -> tuple[str, str | None]:
    prefix = Path(label.split(":")[0]).stem.split("_")[0]
    try:
        return resolve_utility(prefix)
    except InvalidInput:
        raise InvalidInput(
            f"{label}: cannot tell the utility class; give --utility CODE (e.g. PS, JS)"
        ) from None


def _fields(frame: Any, which: Any, mapping: Mapping) -> tuple[dict[str, list[Any]], list[Any]]:
    headers = [c for c in frame.columns if c != frame.geometry.name]
    resolved, _ = resolve_headers(headers, which, mapping, gis=True)
    cols: dict[str, list[Any]] = {}
    attr_cols = []
    for header, target in resolved.items():
        values = frame[header].tolist()
        if target == "attrs":
            attr_cols.append((header, values))
        else:
            cols[target] = translate_values(values, target, mapping)
    attrs = []
    for row in range(len(frame)):
        item = {h: _plain(v[row]) for h, v in attr_cols if clean_text(v[row]) is not None}
        attrs.append(item or None)
    return cols, attrs


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _points(
    label: str,
    frame: Any,
    placement: Placement,
    mapping: Mapping,
    cls: tuple[str, str | None],
) -> pd.DataFrame:
    cols, attrs = _fields(frame, "point", mapping)
    geoms = np.asarray(frame.geometry.values)
    if shapely.is_empty(geoms).any() or shapely.is_missing(geoms).any():
        raise ImportFailed(
            f"{label}: {int(shapely.is_empty(geoms).sum())} point(s) have no coordinates"
        )
    single = (shapely.get_type_id(geoms) == 0).all()
    xy = shapely.get_coordinates(geoms if single else shapely.centroid(geoms))
    crs = _layer_crs(label, frame, placement, mapping)
    x, y = placement.to_storage(crs, xy[:, 0], xy[:, 1], what=label)
    stem = Path(label.split(":")[-1]).stem.lower().rstrip("s")
    default_kind = next((k for key, k in LAYER_KINDS.items() if key in stem), "junction")
    n = len(frame)
    codes = [clean_text(c) or f"{label}#{i}" for i, c in enumerate(cols.get("code", [None] * n))]
    features = [clean_text(v) for v in cols.get("feature", [None] * n)]
    appurtenances = [clean_text(v) for v in cols.get("appurtenance", [None] * n)]
    kinds = [
        clean_text(k) or (node_kind(f, a) if (f or a) else default_kind)
        for k, f, a in zip(cols.get("kind", [None] * n), features, appurtenances, strict=True)
    ]
    height = placement.height_offset
    return node_frame(
        n,
        code=[str(c) for c in codes],
        x=x,
        y=y,
        ground_z=_float(cols, "ground_z", label, n) + height,
        bottom_z=_float(cols, "bottom_z", label, n) + height,
        depth=_float(cols, "depth", label, n),
        kind=kinds,
        feature=features,
        appurtenance=appurtenances,
        valve_state=[valve_state(v) for v in cols.get("valve_state", [None] * n)],
        utility=cls[0],
        subclass=cls[1],
        attrs=attrs,
    )


def _float(cols: dict[str, list[Any]], key: str, label: str, n: int) -> np.ndarray[Any, Any]:
    return to_float(cols[key], what=label, column=key) if key in cols else np.full(n, np.nan)


def _lines(
    layers: list[tuple[str, Any]],
    nodes: pd.DataFrame,
    placement: Placement,
    mapping: Mapping,
    cls: tuple[str, str | None],
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    frames = []
    warnings: list[str] = []
    for label, frame in layers:
        cols, attrs = _fields(frame, "line", mapping)
        parts = shapely.get_parts(np.asarray(frame.geometry.values), return_index=True)
        geoms, owner = parts
        if len(geoms) == 0 or shapely.is_empty(geoms).any():
            raise ImportFailed(f"{label}: line(s) without coordinates")
        n = len(frame)
        flat, index = shapely.get_coordinates(geoms, return_index=True)
        crs = _layer_crs(label, frame, placement, mapping)
        x, y = placement.to_storage(crs, flat[:, 0], flat[:, 1], what=label)
        starts = np.searchsorted(index, np.arange(len(geoms)))
        stops = np.append(starts[1:], len(flat))
        base_codes = [
            clean_text(c) or f"{label}#{i}" for i, c in enumerate(cols.get("code", [None] * n))
        ]
        multi = np.bincount(owner, minlength=n) > 1
        data = _line_values(cols, label, n, mapping, cls, placement.height_offset, warnings)
        rows: dict[str, list[Any]] = {
            k: [] for k in (*data, "code", "attrs", "vertices", "start_xy", "end_xy")
        }
        for k, (a, b, row) in enumerate(zip(starts, stops, owner, strict=True)):
            rows["code"].append(f"{base_codes[row]}#{k}" if multi[row] else base_codes[row])
            rows["attrs"].append(attrs[row])
            rows["vertices"].append(
                np.column_stack([x[a + 1 : b - 1], y[a + 1 : b - 1]]) if b - a > 2 else None
            )
            rows["start_xy"].append((x[a], y[a]))
            rows["end_xy"].append((x[b - 1], y[b - 1]))
            for key, values in data.items():
                rows[key].append(values[row])
        frames.append(pd.DataFrame(rows))
    table = pd.concat(frames, ignore_index=True)
    derived = _attach_nodes(table, nodes, mapping.snap_tolerance, cls, warnings)
    columns = {c: table[c].to_numpy() for c in table.columns if c not in ("start_xy", "end_xy")}
    return segment_frame(len(table), **columns), derived, warnings


def _line_values(
    cols: dict[str, list[Any]],
    label: str,
    n: int,
    mapping: Mapping,
    cls: tuple[str, str | None],
    height: float,
    warnings: list[str],
) -> dict[str, Any]:
    reference = mapping.elevation_reference or ("invert" if is_gravity(cls[0]) else "top")
    data: dict[str, Any] = {
        "utility": [cls[0]] * n,
        "subclass": [cls[1]] * n,
        "depth_ref": [reference] * n,
    }
    for end in ("start", "end"):
        invert = _float(cols, f"{end}_invert", label, n) + height
        top = _float(cols, f"{end}_top", label, n) + height
        plain = _float(cols, f"{end}_elev", label, n) + height
        if reference == "invert":
            invert = np.where(np.isnan(invert), plain, invert)
        else:
            top = np.where(np.isnan(top), plain, top)
        data[f"{end}_invert"], data[f"{end}_top"] = invert, top
        data[f"{end}_depth"] = _float(cols, f"{end}_depth", label, n)
        if f"{end}" in cols:
            data[end] = [clean_text(v) for v in cols[end]]
    diameter = _float(cols, "diameter", label, n)
    unit = mapping.diameter_unit
    if unit is None and np.isfinite(diameter).any():
        unit = "m" if np.nanmax(diameter) <= 5.0 else "mm"
        if unit == "m":
            warnings.append(
                f"{label}: diameters are at most 5, read as metres (set "
                "diameter_unit in the mapping file if not)"
            )
    scale = DIAMETER_UNITS[unit or "mm"]
    shapes = [str(s).upper() if clean_text(s) else "" for s in cols.get("shape", [None] * n)]
    rect = np.array([s.startswith("RECT") for s in shapes], dtype=bool)
    data["section_shape"] = np.where(rect, "rectangular", "circular")
    data["diameter_mm"] = np.where(rect, np.nan, diameter * scale)
    data["width_mm"] = _float(cols, "width", label, n) * scale
    data["height_mm"] = np.where(rect, diameter * scale, _float(cols, "height", label, n) * scale)
    for key in ("material", "burial", "owner", "pressure", "voltage", "link_type"):
        data[key] = [clean_text(v) for v in cols.get(key, [None] * n)]
    data["link_type"] = [v or "pipe" for v in data["link_type"]]
    data["year"] = [parse_year(v) for v in cols.get("year", [None] * n)]
    return data


def _attach_nodes(
    table: pd.DataFrame,
    nodes: pd.DataFrame,
    tolerance: float,
    cls: tuple[str, str | None],
    warnings: list[str],
) -> pd.DataFrame:
    """Fill start/end codes by snapping ends to points, else to shared derived nodes."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(table)
    for end in ("start", "end"):
        if end not in table.columns:
            table[end] = None
    ends = np.array([*table["start_xy"], *table["end_xy"]], dtype=np.float64).reshape(-1, 2)
    codes = np.array([*table["start"], *table["end"]], dtype=object)
    open_ends = np.array([c is None for c in codes])
    if len(nodes) and open_ends.any():
        tree = cKDTree(nodes[["x", "y"]].to_numpy(dtype=np.float64))
        distance, nearest = tree.query(ends[open_ends], distance_upper_bound=tolerance)
        hit = np.isfinite(distance)
        chosen = np.flatnonzero(open_ends)[hit]
        codes[chosen] = nodes["code"].to_numpy()[nearest[hit]]
        open_ends[chosen] = False
    derived = node_frame(0)
    if open_ends.any():
        loose = np.flatnonzero(open_ends)
        pairs = cKDTree(ends[loose]).query_pairs(tolerance, output_type="ndarray")
        graph = coo_matrix(
            (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])),
            shape=(len(loose), len(loose)),
        )
        count, label = connected_components(graph, directed=False)
        taken = set(nodes["code"].astype(str)) if len(nodes) else set()
        names, k = [], 0
        for _ in range(count):
            k += 1
            while f"N{k}" in taken:
                k += 1
            names.append(f"N{k}")
        codes[loose] = np.array(names, dtype=object)[label]
        first = np.unique(label, return_index=True)[1]
        derived = node_frame(
            count,
            code=names,
            x=ends[loose][first, 0],
            y=ends[loose][first, 1],
            kind="derived",
            utility=cls[0],
            subclass=cls[1],
        )
        warnings.append(f"{count} node(s) derived from line ends (snap tolerance {tolerance} m)")
    table["start"], table["end"] = codes[:n], codes[n:]
    return derived

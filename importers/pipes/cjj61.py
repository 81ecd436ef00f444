"""CJJ 61-2017 survey exchange tables (one point and one line table per class) -> Network.

Files: ``JS_POINT.csv`` + ``JS_LINE.csv`` (UTF-8 or GBK/GB18030) or an XLSX workbook whose
sheets are named that way. The class comes from ``--utility``, the mapping file, or the name
prefix (``YS_LINE`` -> PS/YS). Per CJJ 61, ``X`` is the northing and ``Y`` the easting, and
plain 起点高程/埋深 refer to the pipe invert for drainage and to the pipe top for every other
class, unless the header says 管顶/管底 or the mapping file says otherwise.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cim.crs import crs_label
from cim.errors import ImportFailed, InvalidInput
from cim.utilities import is_gravity, resolve_utility
from importers.pipes.mapping import Mapping, Table, resolve_headers, translate_values
from importers.pipes.network import (
    Network,
    Placement,
    clean_text,
    node_frame,
    require_finite_coordinates,
    segment_frame,
    to_float,
)
from importers.pipes.vocabulary import node_kind, parse_size, parse_year, valve_state

TABLE_SUFFIX = re.compile(r"^(?P<prefix>.*?)[_\-\s]?(?P<table>point|line|点表?|线表?)$", re.I)
CSV_SUFFIXES = {".csv", ".txt"}
XLSX_SUFFIXES = {".xlsx", ".xlsm"}


def group_key(path: Path) -> str:
    """``JS_POINT.csv`` and ``JS_LINE.csv`` share the key ``<folder>/JS``."""
    match = TABLE_SUFFIX.match(path.stem)
    prefix = match.group("prefix") if match else path.stem
    return str(path.parent / prefix)


def _read_csv(path: Path) -> pd.DataFrame:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ImportFailed(f"{path.name}: not a readable CSV table: {exc}") from None
    raise ImportFailed(f"{path.name}: neither UTF-8 nor GBK text")


def _tables(paths: list[Path]) -> list[tuple[str, pd.DataFrame]]:
    """(name, frame) of every table: CSV files by stem, workbook sheets by sheet name."""
    out: list[tuple[str, pd.DataFrame]] = []
    for path in paths:
        if path.suffix.lower() in XLSX_SUFFIXES:
            try:
                sheets = pd.read_excel(path, sheet_name=None, dtype=str, keep_default_na=False)
            except Exception as exc:  # openpyxl raises many types for a broken workbook
                raise ImportFailed(f"{path.name}: not a readable XLSX workbook: {exc}") from None
            out.extend((f"{path.name}:{sheet}", df) for sheet, df in sheets.items() if len(df))
        else:
            out.append((path.name, _read_csv(path)))
    return out


def _which(name: str, frame: pd.DataFrame, mapping: Mapping) -> Table:
    line, _ = resolve_headers(list(frame.columns), "line", mapping)
    if "start" in line.values() and "end" in line.values():
        return "line"
    point, _ = resolve_headers(list(frame.columns), "point", mapping)
    if "code" in point.values() and {"x", "y"} <= set(point.values()):
        return "point"
    raise InvalidInput(
        f"{name}: neither a CJJ 61 point table (物探点号, X, Y ...) nor a line table (起点号, "
        f"终点号 ...); headers are {', '.join(map(str, frame.columns))}. Map other headers "
        "with --mapping FILE.yaml"
    )


def _utility(name: str, explicit: str | None, mapping: Mapping) -> tuple[str, str | None]:
    chosen = explicit or mapping.utility
    if chosen:
        return resolve_utility(chosen)
    stem = name.split(":")[-1]
    stem = Path(stem).stem
    match = TABLE_SUFFIX.match(stem)
    prefix = (match.group("prefix") if match else stem).split("_")[-1]
    try:
        return resolve_utility(prefix)
    except InvalidInput:
        raise InvalidInput(
            f"{name}: cannot tell the utility class from the name; name tables like "
            "JS_POINT/JS_LINE or give --utility CODE"
        ) from None


def _columns(
    name: str, frame: pd.DataFrame, which: Table, mapping: Mapping
) -> tuple[dict[str, list[Any]], list[dict[str, Any] | None]]:
    """Canonical columns (vocabulary applied) and per-row attrs; unknown headers are an error."""
    resolved, unknown = resolve_headers(list(frame.columns), which, mapping)
    if unknown:
        raise InvalidInput(
            f"{name}: unknown CJJ 61 {which}-table header(s): {', '.join(unknown)}. "
            "Map them with --mapping FILE.yaml (e.g. `"
            + which
            + ": {"
            + unknown[0]
            + ": "
            + ("物探点号" if which == "point" else "起点号")
            + "}`, or list them under attrs/ignore)"
        )
    columns: dict[str, list[Any]] = {}
    attr_headers = []
    for header, target in resolved.items():
        values = [clean_text(v) for v in frame[header].tolist()]
        if target == "attrs":
            attr_headers.append((str(header), values))
        else:
            columns[target] = translate_values(values, target, mapping)
    attrs: list[dict[str, Any] | None] = []
    for row in range(len(frame)):
        item = {h: v[row] for h, v in attr_headers if v[row] is not None}
        attrs.append(item or None)
    return columns, attrs


def _points(
    name: str,
    frame: pd.DataFrame,
    utility: tuple[str, str | None],
    placement: Placement,
    mapping: Mapping,
) -> pd.DataFrame:
    cols, attrs = _columns(name, frame, "point", mapping)
    codes = np.asarray(cols["code"], dtype=object)
    first, second = (
        to_float(cols["x"], what=name, column="X"),
        to_float(cols["y"], what=name, column="Y"),
    )
    east, north = (second, first) if mapping.axis == "north_east" else (first, second)
    require_finite_coordinates(codes, east, north, what=name)
    if any(c is None for c in codes):
        raise ImportFailed(f"{name}: {sum(c is None for c in codes)} point(s) have no point number")
    crs = placement.source_crs(mapping.crs, what=name)
    x, y = placement.to_storage(crs, east, north, what=name)
    height = placement.height_offset
    features = cols.get("feature", [None] * len(frame))
    appurtenances = cols.get("appurtenance", [None] * len(frame))
    states = [valve_state(v) for v in cols.get("valve_state", [None] * len(frame))]
    kinds = [node_kind(f, a) for f, a in zip(features, appurtenances, strict=True)]
    return node_frame(
        len(frame),
        code=[str(c) for c in codes],
        x=x,
        y=y,
        ground_z=_num(cols, "ground_z", name, "地面高程") + height,
        bottom_z=_num(cols, "bottom_z", name, "井底高程") + height,
        depth=_num(cols, "depth", name, "井底埋深"),
        kind=kinds,
        feature=features,
        appurtenance=appurtenances,
        valve_state=states,
        utility=utility[0],
        subclass=utility[1],
        attrs=attrs,
    )


def _num(cols: dict[str, list[Any]], key: str, name: str, header: str) -> np.ndarray[Any, Any]:
    if key not in cols:
        return np.full(len(next(iter(cols.values()))), np.nan)
    return to_float(cols[key], what=name, column=header)


def _lines(
    name: str,
    frame: pd.DataFrame,
    utility: tuple[str, str | None],
    placement: Placement,
    mapping: Mapping,
) -> pd.DataFrame:
    cols, attrs = _columns(name, frame, "line", mapping)
    n = len(frame)
    reference = mapping.elevation_reference or ("invert" if is_gravity(utility[0]) else "top")
    height = placement.height_offset
    data: dict[str, Any] = {}
    for end in ("start", "end"):
        data[f"{end}_invert"] = _num(cols, f"{end}_invert", name, f"{end} invert") + height
        data[f"{end}_top"] = _num(cols, f"{end}_top", name, f"{end} top") + height
        plain = _num(cols, f"{end}_elev", name, "起点高程" if end == "start" else "终点高程")
        target = data[f"{end}_{reference}"]
        data[f"{end}_{reference}"] = np.where(np.isnan(target), plain + height, target)
        data[f"{end}_depth"] = _num(cols, f"{end}_depth", name, f"{end} depth")
    sizes = [parse_size(v) for v in cols.get("size", [None] * n)]
    bad = [cols["size"][i] for i, s in enumerate(sizes) if s is None]
    if bad:
        raise InvalidInput(f"{name}: 管径 {bad[0]!r} is neither a diameter nor width×height (mm)")
    starts = [str(s) if s is not None else None for s in cols["start"]]
    ends = [str(e) if e is not None else None for e in cols["end"]]
    codes = cols.get("code") or [f"{s}-{e}" for s, e in zip(starts, ends, strict=True)]
    return segment_frame(
        n,
        code=[
            c if c is not None else f"{s}-{e}" for c, s, e in zip(codes, starts, ends, strict=True)
        ],
        start=starts,
        end=ends,
        depth_ref=reference,
        section_shape=[s[0] if s else "circular" for s in sizes],
        diameter_mm=[s[1] if s else None for s in sizes],
        width_mm=[s[2] if s else None for s in sizes],
        height_mm=[s[3] if s else None for s in sizes],
        link_type="cable" if utility[0] in ("DL", "TX") else "pipe",
        material=cols.get("material"),
        pressure=cols.get("pressure"),
        voltage=cols.get("voltage"),
        cable_count=_num(cols, "cable_count", name, "电缆条数"),
        hole_total=_num(cols, "hole_total", name, "总孔数"),
        hole_used=_num(cols, "hole_used", name, "已用孔数"),
        burial=cols.get("burial"),
        owner=cols.get("owner"),
        year=[parse_year(v) for v in cols.get("year", [None] * n)],
        utility=utility[0],
        subclass=utility[1],
        attrs=attrs,
        **data,
    )


def read_cjj61(
    paths: list[Path], *, placement: Placement, mapping: Mapping, utility: str | None
) -> Network:
    """Read point and line tables (CSV pairs or one workbook) into one network."""
    points: list[pd.DataFrame] = []
    lines: list[pd.DataFrame] = []
    by_class: dict[tuple[str, str | None], set[Table]] = defaultdict(set)
    for name, frame in _tables(paths):
        which = _which(name, frame, mapping)
        cls = _utility(name, utility, mapping)
        by_class[cls].add(which)
        if which == "point":
            points.append(_points(name, frame, cls, placement, mapping))
        else:
            lines.append(_lines(name, frame, cls, placement, mapping))
    if not points:
        raise InvalidInput(
            f"{', '.join(p.name for p in paths)}: no CJJ 61 point table (e.g. JS_POINT.csv); "
            "a line table alone has no coordinates"
        )
    nodes = pd.concat(points, ignore_index=True)
    segments = pd.concat(lines, ignore_index=True) if lines else segment_frame(0)
    warnings = [
        f"class {cls[0]}{'/' + cls[1] if cls[1] else ''}: no line table"
        for cls, tables in by_class.items()
        if "line" not in tables
    ]
    return Network(
        nodes=nodes,
        segments=segments,
        source_format="cjj61",
        source_crs=crs_label(placement.source_crs(mapping.crs, what=paths[0].name)),
        units={"length": "m", "diameter": "mm"},
        warnings=warnings,
    )

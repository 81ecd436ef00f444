"""SWMM 5 .inp (drainage, PS) -> Network, read through swmmio.

Junctions, storage units (often the manholes, as in Bellinge) and outfalls become nodes with
their invert (``bottom_z``) and, where a max depth is given, ground = invert + max depth.
Conduits (and pumps, orifices, weirs, outlets) become segments: end inverts are the node invert
plus the in/out offset (``LINK_OFFSETS DEPTH``, the default) or the offset itself
(``ELEVATION``). CIRCULAR sections carry a diameter, RECT_* width x height; other shapes keep
Geom1 as height and their shape name in attrs. CFS/GPM/MGD models are in feet, others in metres.

So the model can be rebuilt and run again (``cim.services.simulation.swmm_model``, flood
simulation), each node and link keeps the rows of the sections keyed by its name, tokens after
the name in the file's own units, in ``attrs["swmm"]`` (``{"JUNCTIONS": [[...]], "XSECTIONS":
[[...]], "INFLOWS": [[...], ...]}``), and the other sections ([OPTIONS], [RAINGAGES],
[TIMESERIES], [SUBCATCHMENTS], [SUBAREAS], [INFILTRATION], [Polygons], [EVAPORATION], [REPORT],
[CURVES]...) go as comment-free lines to ``dataset.options["source_model"]["sections"]``.
Drawing sections ([COORDINATES], [VERTICES], [MAP], [SYMBOLS], [LABELS], [BACKDROP], [TAGS])
are not kept: the rows' geometry is the drawing.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cim.crs import crs_label
from cim.errors import ImportFailed
from cim.utilities import resolve_utility
from importers.pipes.network import (
    Network,
    Placement,
    node_frame,
    require_finite_coordinates,
    segment_frame,
)

US_FLOW_UNITS = {"CFS", "GPM", "MGD"}
FOOT = 0.3048
OTHER_LINKS = {"pumps": "pump", "orifices": "orifice", "weirs": "weir", "outlets": "outlet"}
#: Sections whose rows start with a node or link name: kept on that element in attrs["swmm"].
ELEMENT_SECTIONS = frozenset(
    {
        "JUNCTIONS", "OUTFALLS", "STORAGE", "CONDUITS", "PUMPS", "ORIFICES", "WEIRS", "OUTLETS",
        "XSECTIONS", "LOSSES", "INFLOWS", "DWF", "RDII", "TREATMENT",
    }
)  # fmt: skip
#: Sections describing the drawing only (the stored geometry replaces them).
DRAWING_SECTIONS = frozenset(
    {"COORDINATES", "VERTICES", "MAP", "SYMBOLS", "LABELS", "BACKDROP", "TAGS"}
)
_TOKEN = re.compile(r'"[^"]*"|\S+')


def _frame(inp: Any, name: str) -> pd.DataFrame:
    try:
        value = getattr(inp, name)
    except Exception:  # swmmio raises assorted errors for absent or odd sections
        return pd.DataFrame()
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()


def _num(frame: pd.DataFrame, column: str) -> np.ndarray[Any, Any]:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return np.asarray(pd.to_numeric(frame[column], errors="coerce"), dtype=np.float64)


def read_swmm(path: Path, *, placement: Placement, utility: str | None) -> Network:
    """Read a SWMM network; coordinates need --crs (and --origin for drawing coordinates)."""
    inp = _read_sections(path)
    kept, model_sections = raw_sections(path)
    units = _Units.of(inp.options)
    cls, subclass = resolve_utility(utility or "PS")
    height = placement.height_offset
    table = _node_table(inp, units.scale, height)
    coords = inp.coordinates.copy()
    coords.index = coords.index.astype(str)
    xy = coords.reindex(table["code"])
    codes = table["code"].to_numpy()
    require_finite_coordinates(codes, _num(xy, "X"), _num(xy, "Y"), what=path.name)
    crs = placement.source_crs(None, what=path.name)
    x, y = placement.to_storage(crs, _num(xy, "X"), _num(xy, "Y"), what=path.name)
    nodes = node_frame(
        len(table),
        code=codes.tolist(),
        x=x,
        y=y,
        ground_z=table["ground_z"].to_numpy(),
        bottom_z=table["bottom_z"].to_numpy(),
        depth=table["depth"].to_numpy(),
        kind=table["kind"].tolist(),
        utility=cls,
        subclass=subclass,
        attrs=[a | {"swmm": kept.get(c, {})} for a, c in zip(table["attrs"], codes, strict=True)],
    )
    node_invert = dict(zip(codes, table["bottom_z"].to_numpy(), strict=True))
    segments_table = _segment_table(inp, units, node_invert, height)
    segments_table["vertices"] = _vertices(
        inp.vertices, segments_table["code"], placement, crs, path.name
    )
    segments_table["attrs"] = [
        dict(a) | {"swmm": kept.get(str(c), {})}
        for a, c in zip(segments_table["attrs"], segments_table["code"], strict=True)
    ]
    segments = segment_frame(
        len(segments_table),
        **{c: segments_table[c].to_numpy() for c in segments_table.columns},
        depth_ref="invert",
        utility=cls,
        subclass=subclass,
    )
    return Network(
        nodes=nodes,
        segments=segments,
        source_format="swmm",
        source_crs=crs_label(crs),
        units={
            "flow_units": units.flow_units,
            "source_length": "ft" if units.scale != 1.0 else "m",
            "stored": "m, mm",
        },
        counts_by_type=inp.counts(),
        model={"name": path.name, "sections": model_sections},
    )


def raw_sections(path: Path) -> tuple[dict[str, dict[str, list[list[str]]]], dict[str, list[str]]]:
    """The file's rows without comments: element rows by name (tokens after the name, per
    section) and the other sections' lines (drawing sections left out). Quoted tokens keep
    their quotes so they are written back as read."""
    elements: dict[str, dict[str, list[list[str]]]] = {}
    model: dict[str, list[str]] = {}
    section = ""
    text = path.read_text(encoding="utf-8", errors="replace")
    for raw in text.splitlines():
        line = raw.strip() if section == "TITLE" else raw.split(";", 1)[0].strip()
        if raw.strip().startswith("[") and "]" in raw:
            section = raw.strip()[1 : raw.strip().index("]")].upper()
            continue
        if not line or section in DRAWING_SECTIONS:
            continue
        if section in ELEMENT_SECTIONS:
            tokens = _TOKEN.findall(line)
            rows = elements.setdefault(tokens[0], {}).setdefault(section, [])
            rows.append(tokens[1:])
        else:
            model.setdefault(section, []).append(line)
    return elements, model


@dataclass
class _Sections:
    """The sections of a SWMM file that become nodes and segments (empty frames when absent)."""

    junctions: pd.DataFrame
    storage: pd.DataFrame
    outfalls: pd.DataFrame
    conduits: pd.DataFrame
    xsections: pd.DataFrame
    coordinates: pd.DataFrame
    vertices: pd.DataFrame
    options: pd.DataFrame
    others: dict[str, pd.DataFrame]

    def counts(self) -> dict[str, Any]:
        return {
            "nodes": {
                "junctions": len(self.junctions),
                "storage": len(self.storage),
                "outfalls": len(self.outfalls),
            },
            "links": {
                "conduits": len(self.conduits),
                **{attr: len(self.others[kind]) for attr, kind in OTHER_LINKS.items()},
            },
        }


def _read_sections(path: Path) -> _Sections:
    import swmmio  # heavy: imported only when a SWMM file is read

    names = ("junctions", "storage", "outfalls", "conduits", "xsections", "coordinates")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inp = swmmio.Model(str(path)).inp
            frames = {name: _frame(inp, name) for name in (*names, "vertices", "options")}
            others = {kind: _frame(inp, attr) for attr, kind in OTHER_LINKS.items()}
    except Exception as exc:  # swmmio surfaces parse problems as many exception types
        raise ImportFailed(f"{path.name}: not a readable SWMM file: {exc}") from None
    return _Sections(**frames, others=others)


@dataclass(frozen=True)
class _Units:
    """Flow units, the length scale to metres, and how link offsets are given."""

    flow_units: str
    scale: float
    offsets_are_elevations: bool

    @classmethod
    def of(cls, options: pd.DataFrame) -> _Units:
        option = (
            {str(k).upper(): str(v).upper() for k, v in options.iloc[:, 0].items()}
            if len(options)
            else {}
        )
        flow_units = option.get("FLOW_UNITS", "CFS")
        return cls(
            flow_units=flow_units,
            scale=FOOT if flow_units in US_FLOW_UNITS else 1.0,
            offsets_are_elevations=option.get("LINK_OFFSETS", "DEPTH") == "ELEVATION",
        )


def _node_table(inp: _Sections, scale: float, height: float) -> pd.DataFrame:
    """Junctions, storage units and outfalls: code, kind, invert, ground, depth, attrs."""
    parts = []
    for kind, frame, depth_column in (
        ("junction", inp.junctions, "MaxDepth"),
        ("storage", inp.storage, "MaxD"),
        ("outfall", inp.outfalls, None),
    ):
        invert = _num(frame, "InvertElev") * scale
        depth = _num(frame, depth_column) * scale if depth_column else np.full(len(frame), np.nan)
        ground = np.where(depth > 0, invert + depth, np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "code": frame.index.astype(str),
                    "kind": kind,
                    "bottom_z": invert + height,
                    "ground_z": ground + height,
                    "depth": np.where(depth > 0, depth, np.nan),
                    "attrs": [{"swmm_type": kind, "invert_elev_m": float(i)} for i in invert],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _segment_table(
    inp: _Sections, units: _Units, node_invert: dict[str, float], height: float
) -> pd.DataFrame:
    """Conduits and the other links (pumps, orifices, weirs, outlets), one row each."""
    links = [
        _conduits(
            inp.conduits,
            inp.xsections,
            units.scale,
            node_invert,
            units.offsets_are_elevations,
            height,
        )
    ]
    links += [_other(frame, kind) for kind, frame in inp.others.items() if len(frame)]
    return (
        pd.concat([t for t in links if len(t)], ignore_index=True)
        if any(len(t) for t in links)
        else pd.DataFrame(columns=["code"])
    )


def _conduits(
    conduits: pd.DataFrame,
    xsections: pd.DataFrame,
    scale: float,
    node_invert: dict[str, float],
    offsets_are_elevations: bool,
    height: float,
) -> pd.DataFrame:
    if not len(conduits):
        return pd.DataFrame()
    codes = conduits.index.astype(str)
    xs = xsections.copy()
    xs.index = xs.index.astype(str)
    xs = xs.reindex(codes)
    start = conduits["InletNode"].astype(str).to_numpy()
    end = conduits["OutletNode"].astype(str).to_numpy()
    in_offset = _num(conduits, "InOffset")
    out_offset = _num(conduits, "OutOffset")
    base_start = np.array([node_invert.get(s, np.nan) for s in start])
    base_end = np.array([node_invert.get(e, np.nan) for e in end])
    if offsets_are_elevations:
        start_invert = np.where(np.isnan(in_offset), base_start, in_offset * scale + height)
        end_invert = np.where(np.isnan(out_offset), base_end, out_offset * scale + height)
    else:
        start_invert = base_start + np.nan_to_num(in_offset) * scale
        end_invert = base_end + np.nan_to_num(out_offset) * scale
    shape = xs["Shape"].astype(str).str.upper().to_numpy() if "Shape" in xs else np.array([])
    geom1 = _num(xs, "Geom1") * scale * 1000.0
    geom2 = _num(xs, "Geom2") * scale * 1000.0
    circular = np.isin(shape, ["CIRCULAR", "FORCE_MAIN", "FILLED_CIRCULAR"])
    rectangular = np.char.startswith(shape.astype(str), "RECT")
    return pd.DataFrame(
        {
            "code": codes,
            "start": start,
            "end": end,
            "link_type": "conduit",
            "start_invert": start_invert,
            "end_invert": end_invert,
            "section_shape": np.where(
                circular, "circular", np.where(rectangular, "rectangular", "other")
            ),
            "diameter_mm": np.where(circular, geom1, np.nan),
            "width_mm": np.where(rectangular, geom2, np.nan),
            "height_mm": np.where(circular, np.nan, geom1),
            "attrs": [
                {
                    "swmm_type": "conduit",
                    "shape": s,
                    "length_m": float(length) * scale,
                    "roughness": float(n),
                    "barrels": b,
                }
                for s, length, n, b in zip(
                    shape,
                    _num(conduits, "Length"),
                    _num(conduits, "Roughness"),
                    _num(xs, "Barrels").tolist(),
                    strict=True,
                )
            ],
        }
    )


def _other(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    if "InletNode" not in frame.columns or "OutletNode" not in frame.columns:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "code": frame.index.astype(str),
            "start": frame["InletNode"].astype(str).to_numpy(),
            "end": frame["OutletNode"].astype(str).to_numpy(),
            "link_type": kind,
            "section_shape": "other",
            "attrs": [{"swmm_type": kind}] * len(frame),
        }
    )


def _vertices(
    vertices: pd.DataFrame, codes: pd.Series, placement: Placement, crs: Any, what: str
) -> list[Any]:
    if not len(vertices) or not len(codes):
        return [None] * len(codes)
    names = vertices.index.astype(str).to_numpy()
    vx, vy = placement.to_storage(crs, _num(vertices, "X"), _num(vertices, "Y"), what=what)
    grouped: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        grouped.setdefault(name, []).append(i)
    return [
        np.column_stack([vx[grouped[c]], vy[grouped[c]]]) if c in grouped else None
        for c in codes.astype(str)
    ]

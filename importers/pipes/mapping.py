"""Header and vocabulary mapping for CJJ 61 tables and GIS layers (built-in names + a YAML file).

Every column is resolved to a *canonical field* (English key). The built-in names are the CJJ
61-2017 exchange-table headers (物探点号, 地面高程, 起点埋深 ...) and common GIS/SWMM field
names; a ``--mapping`` YAML file adds others and translates value vocabularies::

    utility: YS                 # class or sub-class code when the file name does not say
    crs: EPSG:4547
    axis: north_east            # CJJ 61 X = northing (default) | east_north
    elevation_reference: invert # what 起点高程/终点高程 and 埋深 refer to: invert | top
    diameter_unit: mm           # mm | cm | m | in (GIS numeric diameters)
    snap_tolerance: 0.05        # GIS: line ends closer than this (m) share one node
    point: {Exp_No: 物探点号, High: 地面高程, WellDeep: 井底埋深}
    line: {S_Point: 起点号, E_Point: 终点号, D_S: 管径}
    values: {附属物: {VALVE: 阀门}, 材质: {Cast iron: 铸铁}}
    attrs: [备注, 道路名称]      # other headers to keep as attributes
    ignore: [序号]              # headers to drop
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cim.errors import InvalidInput

Table = Literal["point", "line"]

POINT_FIELDS: dict[str, tuple[str, ...]] = {
    "code": ("物探点号", "管点编号", "点号", "管点号", "点编号", "exp_no"),
    "x": ("x", "x坐标", "纵坐标"),
    "y": ("y", "y坐标", "横坐标"),
    "ground_z": ("地面高程", "地面高", "high"),
    "feature": ("特征", "特征点", "feature"),
    "appurtenance": ("附属物", "subsid"),
    "depth": ("井底埋深", "井深", "welldeep", "井底深"),
    "bottom_z": ("井底高程",),
    "valve_state": ("阀门状态", "开关状态"),
}
LINE_FIELDS: dict[str, tuple[str, ...]] = {
    "code": ("管线编号", "线号", "管段编号"),
    "start": ("起点号", "起点点号", "起始点号", "起点物探点号", "s_point"),
    "end": ("终点号", "终点点号", "终点物探点号", "e_point"),
    "start_depth": ("起点埋深", "s_deep"),
    "end_depth": ("终点埋深", "e_deep"),
    "start_elev": ("起点高程", "s_h"),
    "end_elev": ("终点高程", "e_h"),
    "start_top": ("起点管顶高程",),
    "end_top": ("终点管顶高程",),
    "start_invert": ("起点管底高程", "起点管内底高程", "起点内底高程"),
    "end_invert": ("终点管底高程", "终点管内底高程", "终点内底高程"),
    "size": ("管径", "断面尺寸", "管径/断面", "规格", "d_s"),
    "material": ("材质", "材料"),
    "burial": ("埋设方式", "埋设类型"),
    "pressure": ("压力",),
    "voltage": ("电压",),
    "cable_count": ("电缆条数", "电缆根数", "条数"),
    "hole_total": ("总孔数",),
    "hole_used": ("已用孔数",),
    "owner": ("权属单位",),
    "year": ("建设年代", "埋设年代", "敷设年代", "埋设日期"),
}
# Headers of CJJ 61 tables that cim keeps as attributes without being told.
KNOWN_EXTRA: dict[Table, tuple[str, ...]] = {
    "point": (
        "图上点号",
        "备注",
        "井盖材质",
        "井盖规格",
        "井盖尺寸",
        "井盖形状",
        "井室规格",
        "井脖深",
        "偏心井位",
        "偏心距",
        "旋转角",
        "符号角度",
        "所在道路",
        "道路名称",
        "探测单位",
        "探测日期",
        "测量日期",
        "权属单位",
        "建设年代",
        "状态",
        "图幅号",
        "序号",
        "管线类别",
    ),
    "line": (
        "备注",
        "流向",
        "线型",
        "探测单位",
        "探测日期",
        "所在道路",
        "道路名称",
        "状态",
        "管线长度",
        "长度",
        "序号",
        "管线类别",
        "套管",
        "图幅号",
    ),
}
# Field names GIS layers (and SWMM/EPANET exports such as GisToSWMM5, WNTR) commonly use.
GIS_FIELDS: dict[Table, dict[str, tuple[str, ...]]] = {
    "point": {
        "code": ("name", "id", "code", "node_id", "outfall", "junction"),
        "ground_z": ("elevation", "ground", "ground_z", "ground_level", "rim_elev"),
        "bottom_z": ("inv_elev", "invert", "invert_elev", "invertelev", "bottom_z"),
        "depth": ("max_depth", "maxdepth", "depth"),
        "kind": ("kind", "node_type"),
    },
    "line": {
        "code": ("name", "id", "code", "link_id", "link"),
        "start": (
            "from",
            "from_node",
            "junc_in",
            "node1",
            "start_node",
            "start_node_name",
            "inletnode",
            "us_node",
        ),
        "end": (
            "to",
            "to_node",
            "junc_out",
            "node2",
            "end_node",
            "end_node_name",
            "outletnode",
            "ds_node",
        ),
        "start_invert": ("elev_in", "invert_in", "us_invert", "start_invert"),
        "end_invert": ("elev_out", "invert_out", "ds_invert", "end_invert"),
        "diameter": ("diameter", "diam", "geom1", "dn"),
        "shape": ("cshape", "shape", "section_shape"),
        "material": ("material", "mat"),
        "year": ("year", "install_year"),
        "link_type": ("link_type", "type"),
    },
}
# The canonical keys a mapping may name besides the Chinese headers above.
EXTRA_TARGETS = {"diameter", "width", "height", "shape", "kind", "link_type", "attrs"}

_UNIT_SUFFIX = re.compile(r"\s*[（(][^()（）]*[)）]\s*$")


def normalise_header(header: str) -> str:
    """Compare headers without case, spaces or a trailing unit: ``起点埋深(m)`` = ``起点埋深``."""
    text = _UNIT_SUFFIX.sub("", str(header)).strip()
    return re.sub(r"\s+", "", text).lower()


@dataclass
class Mapping:
    """A parsed ``--mapping`` file (all optional)."""

    utility: str | None = None
    crs: str | None = None
    axis: Literal["north_east", "east_north"] = "north_east"
    elevation_reference: Literal["invert", "top"] | None = None
    diameter_unit: str | None = None
    snap_tolerance: float = 0.01
    point: dict[str, str] = field(default_factory=dict)
    line: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    attrs: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    source: str | None = None

    def table(self, which: Table) -> dict[str, str]:
        return self.point if which == "point" else self.line


def load_mapping(path: Path | None) -> Mapping:
    """Read and check a mapping file; an unknown key or target is an error naming it."""
    if path is None:
        return Mapping()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read mapping file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"mapping file {path}: expected a YAML mapping at the top level")
    allowed = set(Mapping.__dataclass_fields__) - {"source"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InvalidInput(
            f"mapping file {path}: unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    mapping = Mapping(source=str(path))
    for key, value in raw.items():
        setattr(mapping, key, value)
    if mapping.axis not in ("north_east", "east_north"):
        raise InvalidInput(f"mapping file {path}: axis must be north_east or east_north")
    if mapping.elevation_reference not in (None, "invert", "top"):
        raise InvalidInput(f"mapping file {path}: elevation_reference must be invert or top")
    if mapping.diameter_unit not in (None, *DIAMETER_UNITS):
        raise InvalidInput(
            f"mapping file {path}: diameter_unit must be one of {', '.join(DIAMETER_UNITS)}"
        )
    for which in ("point", "line"):
        table: Any = getattr(mapping, which)
        if not isinstance(table, dict):
            raise InvalidInput(f"mapping file {path}: {which} must map source header -> field")
        for source, target in table.items():
            if canonical_target(str(target), which) is None:
                raise InvalidInput(
                    f"mapping file {path}: {which} header {source!r} maps to {target!r}, "
                    f"which is not a {which}-table field"
                )
    return mapping


DIAMETER_UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4}


def canonical_target(name: str, which: Table) -> str | None:
    """The canonical key for a field name given as English key or Chinese header."""
    fields = POINT_FIELDS if which == "point" else LINE_FIELDS
    key = normalise_header(name)
    if key in fields or key in EXTRA_TARGETS:
        return key
    for canonical, aliases in fields.items():
        if key in (normalise_header(a) for a in aliases):
            return canonical
    return None


def resolve_headers(
    headers: list[str], which: Table, mapping: Mapping, *, gis: bool = False
) -> tuple[dict[str, str], list[str]]:
    """Map each header to a canonical field or ``attrs``; returns (mapping, unknown headers).

    Mapping-file names win over built-in names. In GIS layers unknown fields are attributes;
    in CJJ 61 tables they are returned as unknown so the caller can refuse them.
    """
    fields = POINT_FIELDS if which == "point" else LINE_FIELDS
    user = {
        normalise_header(k): canonical_target(v, which) for k, v in mapping.table(which).items()
    }
    keep = {normalise_header(h) for h in (*KNOWN_EXTRA[which], *mapping.attrs)}
    drop = {normalise_header(h) for h in mapping.ignore}
    builtin: dict[str, str] = {}
    for canonical, aliases in fields.items():
        for alias in aliases:
            builtin[normalise_header(alias)] = canonical
    if gis:
        for canonical, aliases in GIS_FIELDS[which].items():
            for alias in aliases:
                builtin.setdefault(normalise_header(alias), canonical)
    resolved: dict[str, str] = {}
    unknown: list[str] = []
    taken: set[str] = set()
    for header in headers:
        key = normalise_header(header)
        target = user.get(key) or builtin.get(key)
        if key in drop:
            continue
        if target is not None and target != "attrs" and target not in taken:
            resolved[header] = target
            taken.add(target)
        elif key in keep or gis or target is not None:
            resolved[header] = "attrs"
        else:
            unknown.append(header)
    return resolved, unknown


def translate_values(values: list[Any], field_name: str, mapping: Mapping) -> list[Any]:
    """Apply the mapping's vocabulary for ``field_name`` (given by key or Chinese header)."""
    vocab: dict[str, Any] | None = None
    for name, table in mapping.values.items():
        if normalise_header(name) == normalise_header(field_name) or any(
            canonical_target(name, which) == field_name for which in ("point", "line")
        ):
            vocab = {str(k).strip(): v for k, v in (table or {}).items()}
            break
    if not vocab:
        return values
    return [vocab.get(str(v).strip(), v) if v is not None else v for v in values]

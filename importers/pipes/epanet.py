"""EPANET .inp (water, JS) -> Network, read through WNTR (which converts US units to SI).

Junctions, reservoirs and tanks become nodes; pipes and pumps become segments (with their
vertices); every valve becomes a *valve node* at the middle of the valve link, joined to the
link's two nodes by two short ``valve`` segments, so isolation analyses can stop at it. Node
elevations are taken as ground level (in practice they are: KY4's match its DEM); pipes are laid
``--default-cover`` below it. Gate valves, which ``.inp`` files lack, come from a WNTR valve
layer (``--valves``, :mod:`importers.pipes.valve_layer`).

So the network can be written back and simulated (``cim export pipes``, shutdown impact), every
element keeps what WNTR knows of it beyond its place (demands and their patterns, pump curves,
valve settings, tank curves...) in ``attrs["wntr"]``, and the file's options, patterns, curves,
controls and sources go to ``dataset.options["source_model"]`` (WNTR's ``to_dict`` shapes).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

STATUS = {"OPEN": "open", "CLOSED": "closed", "ACTIVE": "open", "CV": "open"}
#: Keys of WNTR's element dicts that the rows themselves hold (name, type, ends, place).
PLACED_KEYS = frozenset(
    {
        "name",
        "node_type",
        "link_type",
        "coordinates",
        "vertices",
        "start_node_name",
        "end_node_name",
    }
)
#: Parts of WNTR's model dict kept on the dataset (everything that is not a node or a link).
MODEL_KEYS = ("name", "options", "curves", "patterns", "controls", "sources")


def _load(path: Path) -> Any:
    import wntr  # heavy: imported only when an EPANET file is read
    from wntr.epanet.exceptions import EpanetException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return wntr.network.WaterNetworkModel(str(path))
    except EpanetException as exc:
        message = " ".join(str(exc).replace("(%s), ", "").split())
        raise ImportFailed(f"{path.name}: not a valid EPANET file: {message}") from None
    except (ValueError, KeyError, IndexError, RuntimeError) as exc:
        raise ImportFailed(f"{path.name}: not a valid EPANET file: {exc}") from None


def read_epanet(path: Path, *, placement: Placement, utility: str | None) -> Network:
    """Read an EPANET network; coordinates need --crs (and --origin for drawing coordinates)."""
    wn = _load(path)
    cls, subclass = resolve_utility(utility or "JS")
    model = _plain(wntr_dict(wn))
    kept_nodes = {e["name"]: _hydraulics(e) for e in model["nodes"]}
    kept_links = {e["name"]: _hydraulics(e) for e in model["links"]}
    found = _read_nodes(wn)
    for name, attrs in zip(found.names, found.attrs, strict=True):
        attrs["wntr"] = kept_nodes[name]
    xy = np.asarray(found.coords, dtype=np.float64).reshape(-1, 2)
    require_finite_coordinates(found.names, xy[:, 0], xy[:, 1], what=path.name)
    crs = placement.source_crs(None, what=path.name)

    def to_storage(points: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
        return placement.to_storage(crs, points[:, 0], points[:, 1], what=path.name)

    x, y = to_storage(xy)
    index = {name: i for i, name in enumerate(found.names)}
    seg = _pipes_and_pumps(wn, to_storage)
    for name, attrs in zip(seg["code"], seg["attrs"], strict=True):
        attrs["wntr"] = kept_links[name]
    node_ground = np.asarray(found.ground, dtype=np.float64) + placement.height_offset
    valve_nodes = _valves(wn, seg, index, x, y, node_ground, to_storage)
    for name, attrs in zip(wn.valve_name_list, valve_nodes["attrs"], strict=True):
        attrs["wntr"] = kept_links[name]
    nodes = node_frame(
        len(found.names) + len(valve_nodes["code"]),
        code=found.names + valve_nodes["code"],
        x=np.concatenate([x, np.asarray(valve_nodes["x"], dtype=np.float64)]),
        y=np.concatenate([y, np.asarray(valve_nodes["y"], dtype=np.float64)]),
        ground_z=np.concatenate([node_ground, valve_nodes["ground"]]),
        kind=found.kinds + valve_nodes["kind"],
        valve_state=[None] * len(found.names) + valve_nodes["state"],
        utility=cls,
        subclass=subclass,
        attrs=found.attrs + valve_nodes["attrs"],
    )
    segments = segment_frame(
        len(seg["code"]),
        **seg,
        depth_ref="top",
        section_shape="circular",
        utility=cls,
        subclass=subclass,
    )
    description = wn.describe(level=1)
    return Network(
        nodes=nodes,
        segments=segments,
        source_format="epanet",
        source_crs=crs_label(crs),
        units={"source": str(wn.options.hydraulic.inpfile_units), "stored": "SI (m, mm)"},
        counts_by_type={"nodes": description["Nodes"], "links": description["Links"]},
        model={key: model.get(key) for key in MODEL_KEYS} | {"name": path.name},
    )


def wntr_dict(wn: Any) -> dict[str, Any]:
    """WNTR's dictionary of the whole model (the shapes ``wntr.network.from_dict`` reads)."""
    import wntr

    return dict(wntr.network.to_dict(wn))


def _hydraulics(entry: dict[str, Any]) -> dict[str, Any]:
    """One element's WNTR dict without what the row itself holds (name, ends, geometry)."""
    return {key: value for key, value in entry.items() if key not in PLACED_KEYS}


def _plain(value: Any) -> Any:
    """JSON-ready: tuples as lists, NaN and infinities as None (jsonb refuses them)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


@dataclass
class _Nodes:
    """Junctions, reservoirs and tanks in file order: name, kind, ground, attrs, drawing x/y."""

    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    ground: list[float] = field(default_factory=list)
    attrs: list[dict[str, Any]] = field(default_factory=list)
    coords: list[tuple[float, float]] = field(default_factory=list)

    def add(self, name: str, node: Any, ground: float, attrs: dict[str, Any]) -> None:
        self.names.append(name)
        self.kinds.append(attrs["epanet_type"])
        self.ground.append(ground)
        self.attrs.append(attrs)
        self.coords.append(node.coordinates)


def _read_nodes(wn: Any) -> _Nodes:
    found = _Nodes()
    for name, node in wn.junctions():
        found.add(
            name,
            node,
            node.elevation,
            {
                "epanet_type": "junction",
                "elevation_m": node.elevation,
                "base_demand_m3s": node.base_demand,
            },
        )
    for name, node in wn.reservoirs():
        # A reservoir has a head, not a ground level.
        found.add(name, node, np.nan, {"epanet_type": "reservoir", "base_head_m": node.base_head})
    for name, node in wn.tanks():
        found.add(
            name,
            node,
            node.elevation,
            {
                "epanet_type": "tank",
                "elevation_m": node.elevation,
                "diameter_m": node.diameter,
                "min_level_m": node.min_level,
                "max_level_m": node.max_level,
                "init_level_m": node.init_level,
            },
        )
    return found


def _pipes_and_pumps(wn: Any, to_storage: Any) -> dict[str, list[Any]]:
    """The segment columns of every pipe and pump (valves are added by :func:`_valves`)."""
    seg: dict[str, list[Any]] = {
        k: [] for k in ("code", "start", "end", "link_type", "diameter_mm", "attrs", "vertices")
    }
    for name, link in wn.pipes():
        status = str(link.initial_status).upper()
        _add_link(
            seg,
            name,
            link.start_node_name,
            link.end_node_name,
            "pipe",
            link.diameter * 1000.0,
            link.vertices,
            to_storage,
            {
                "epanet_type": "pipe",
                "length_m": link.length,
                "roughness": link.roughness,
                "minor_loss": link.minor_loss,
                "status": STATUS.get(status, status.lower()),
                "check_valve": bool(link.check_valve),
            },
        )
    for name, link in wn.pumps():
        _add_link(
            seg,
            name,
            link.start_node_name,
            link.end_node_name,
            "pump",
            np.nan,
            link.vertices,
            to_storage,
            {
                "epanet_type": "pump",
                "pump_type": link.pump_type,
                "status": str(link.initial_status).lower(),
            },
        )
    return seg


def _add_link(
    seg: dict[str, list[Any]],
    name: str,
    start: str,
    end: str,
    link_type: str,
    diameter_mm: float,
    vertices: list[tuple[float, float]] | None,
    to_storage: Any,
    attrs: dict[str, Any],
) -> None:
    seg["code"].append(name)
    seg["start"].append(start)
    seg["end"].append(end)
    seg["link_type"].append(link_type)
    seg["diameter_mm"].append(diameter_mm)
    seg["attrs"].append(attrs)
    if vertices:
        vx, vy = to_storage(np.asarray(vertices, dtype=np.float64).reshape(-1, 2))
        seg["vertices"].append(np.column_stack([vx, vy]))
    else:
        seg["vertices"].append(None)


def _valves(
    wn: Any,
    seg: dict[str, list[Any]],
    index: dict[str, int],
    x: Any,
    y: Any,
    node_ground: np.ndarray[Any, Any],
    to_storage: Any,
) -> dict[str, list[Any]]:
    """One valve node per valve link, halfway along it, with two half-links."""
    out: dict[str, list[Any]] = {k: [] for k in ("code", "x", "y", "kind", "state", "attrs")}
    ground: list[float] = []
    for name, link in wn.valves():
        a, b = index[link.start_node_name], index[link.end_node_name]
        code = name if name not in index else f"valve:{name}"
        out["code"].append(code)
        out["x"].append((x[a] + x[b]) / 2)
        out["y"].append((y[a] + y[b]) / 2)
        out["kind"].append("valve")
        status = str(link.initial_status).upper()
        out["state"].append("closed" if status == "CLOSED" else "open")
        out["attrs"].append(
            {
                "epanet_type": "valve",
                "valve_type": link.valve_type,
                "setting": link.initial_setting,
                "status": status.lower(),
                "diameter_mm": link.diameter * 1000.0,
            }
        )
        pair = node_ground[[a, b]]
        ground.append(float(np.nanmean(pair)) if np.isfinite(pair).any() else np.nan)
        for part, (start, end) in (
            ("a", (link.start_node_name, code)),
            ("b", (code, link.end_node_name)),
        ):
            _add_link(
                seg,
                f"{name}:{part}",
                start,
                end,
                "valve",
                link.diameter * 1000.0,
                None,
                to_storage,
                {"epanet_type": "valve", "valve": name},
            )
    out["ground"] = ground
    return out

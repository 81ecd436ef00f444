"""A WNTR ``WaterNetworkModel`` of one stored EPANET network: what export and simulation share.

The EPANET importer (``importers/pipes/epanet.py``) stores each junction, tank and reservoir as a
``pipe_node`` (elevation as ``ground_z``), each pipe and pump as a ``pipe_segment``, each EPANET
valve as a valve node with two half segments (``NAME:a``, ``NAME:b``), and cuts pipes at the gate
valves of a ``--valves`` layer into pieces carrying ``source_link``. What WNTR knew of each element
beyond its place is in ``attrs["wntr"]``; options, patterns, curves and controls are in
``dataset.options["source_model"]``. This module puts the original links back together and hands
WNTR's own dictionary to ``wntr.network.from_dict``, so the maintained library builds the model.

Precedence, lowest first: WNTR's defaults, ``attrs["wntr"]``, the importer's named attrs
(``length_m``, ``roughness``, ``base_demand_m3s``, ``setting``...), the columns (``ground_z``,
``diameter_mm``, geometry, ``valve_state``). A gate valve of the layer stored ``closed`` closes
its link. Coordinates go back to the source CRS and drawing origin of the import.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.crs import transformer
from cim.db.models import Dataset
from cim.errors import InvalidInput, NotFound
from cim.services.pipes.scope import session_srid

NODE_TYPES = {"junction": "Junction", "tank": "Tank", "reservoir": "Reservoir"}
LINK_TYPES = {"pipe": "Pipe", "pump": "Pump"}
MODEL_KEYS = ("options", "curves", "patterns", "controls", "sources")


@dataclass
class StoredModel:
    """The WNTR model of one dataset and how cim's ids map onto its names."""

    dataset_id: int
    wn: Any  # wntr.network.WaterNetworkModel (wntr is imported lazily)
    node_id: dict[str, int]  # WNTR node name -> pipe_node id
    node_kind: dict[str, str]
    link_of_segment: dict[int, str]  # pipe_segment id -> WNTR link name
    link_of_valve: dict[int, str]  # valve pipe_node id -> the WNTR link it closes
    source_units: str | None
    defaults: list[str] = field(default_factory=list)  # what came from defaults, for the answer


@dataclass
class _Rows:
    nodes: list[Any]
    segments: list[Any]
    node_code: dict[int, str]
    node_row: dict[int, Any]
    node_xy: dict[int, tuple[float, float]]
    vertices: dict[int, list[list[float]]]


def load_model(session: Session, dataset_id: int) -> StoredModel:
    """The WNTR model of EPANET pipe dataset ``dataset_id`` (refused for any other network)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.status != "ready":
        raise NotFound(f"dataset {dataset_id} does not exist or is not ready")
    options = dataset.options or {}
    if dataset.kind != "pipes" or options.get("format") != "epanet":
        raise InvalidInput(
            f"dataset {dataset_id} is not an EPANET water network (kind {dataset.kind}, format "
            f"{options.get('format')}); simulation and EPANET export need one imported from .inp"
        )
    rows = _read_rows(session, dataset, session_srid(session))
    utilities = {str(r.utility).upper() for r in rows.segments}
    if utilities - {"JS"}:
        raise InvalidInput(
            f"dataset {dataset_id} holds {', '.join(sorted(utilities))} pipes; the hydraulic "
            "model is built for water supply (JS) networks"
        )
    origin = options.get("origin") or [0.0, 0.0, 0.0]
    height = float(origin[2]) if len(origin) > 2 else 0.0  # --origin E,N,H added H to heights
    built = _Builder(dataset_id, rows, height)
    nodes = built.nodes()
    links = built.links()
    stored = options.get("source_model") or {}
    if not stored:
        built.defaults.append("options, patterns, curves and controls: WNTR defaults (none kept)")
    model: dict[str, Any] = {"version": None, "comment": None, "references": [], "sources": []}
    model |= {key: copy.deepcopy(stored[key]) for key in MODEL_KEYS if stored.get(key)}
    model |= {"name": stored.get("name", dataset.name), "nodes": nodes, "links": links}
    wn = _from_dict(model, dataset_id)
    return StoredModel(
        dataset_id=dataset_id,
        wn=wn,
        node_id=built.node_id,
        node_kind=built.node_kind,
        link_of_segment=built.link_of_segment,
        link_of_valve=built.link_of_valve,
        source_units=(dataset.transform or {}).get("units", {}).get("source"),
        defaults=built.defaults,
    )


def _from_dict(model: dict[str, Any], dataset_id: int) -> Any:
    import wntr

    try:
        return wntr.network.from_dict(model)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        message = " ".join(str(exc).split())
        raise InvalidInput(
            f"dataset {dataset_id}: the stored network does not make a hydraulic model: {message}"
        ) from None


def _read_rows(session: Session, dataset: Dataset, srid: int) -> _Rows:
    """Nodes and segments with their coordinates moved back to the source CRS and origin."""
    nodes = session.execute(
        text(
            "SELECT id, code, kind, ground_z, valve_state, attrs, ST_X(geom) AS x, ST_Y(geom) AS y"
            " FROM pipe_node WHERE dataset_id = :d ORDER BY id"
        ),
        {"d": dataset.id},
    ).all()
    segments = session.execute(
        text(
            "SELECT id, code, link_type, utility, start_node_id, end_node_id, diameter_mm,"
            " length_m, attrs, ST_AsBinary(ST_Force2D(geom)) AS wkb"
            " FROM pipe_segment WHERE dataset_id = :d ORDER BY id"
        ),
        {"d": dataset.id},
    ).all()
    back = _to_source(dataset, srid)
    xs, ys = back(np.array([r.x for r in nodes]), np.array([r.y for r in nodes]))
    node_xy = {r.id: (float(x), float(y)) for r, x, y in zip(nodes, xs, ys, strict=True)}
    lines = shapely.from_wkb([bytes(r.wkb) for r in segments]) if segments else []
    vertices: dict[int, list[list[float]]] = {}
    for row, line in zip(segments, lines, strict=True):
        inner = shapely.get_coordinates(line)[1:-1]
        if len(inner):
            vx, vy = back(inner[:, 0], inner[:, 1])
            vertices[row.id] = np.column_stack([vx, vy]).tolist()
    return _Rows(
        nodes=list(nodes),
        segments=list(segments),
        node_code={r.id: r.code for r in nodes},
        node_row={r.id: r for r in nodes},
        node_xy=node_xy,
        vertices=vertices,
    )


def _to_source(dataset: Dataset, srid: int) -> Any:
    """Storage x/y -> the import's source CRS, less the ``--origin`` shift (drawing coordinates)."""
    origin = (dataset.options or {}).get("origin") or [0.0, 0.0, 0.0]
    source = dataset.source_crs
    move = transformer(srid, source) if source and source != f"EPSG:{srid}" else None

    def back(x: Any, y: Any) -> tuple[Any, Any]:
        if move is not None and len(x):
            x, y = move.transform(x, y)
        return np.asarray(x) - origin[0], np.asarray(y) - origin[1]

    return back


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class _Builder:
    """Turns stored rows into WNTR node and link dicts, recording the id -> name maps."""

    def __init__(self, dataset_id: int, rows: _Rows, height: float) -> None:
        self.dataset_id = dataset_id
        self.rows = rows
        self.height = height
        self.node_id: dict[str, int] = {}
        self.node_kind: dict[str, str] = {}
        self.link_of_segment: dict[int, str] = {}
        self.link_of_valve: dict[int, str] = {}
        self.defaults: list[str] = []
        self.closed_links: set[str] = set()

    def nodes(self) -> list[dict[str, Any]]:
        out = []
        for row in self.rows.nodes:
            attrs = row.attrs or {}
            if row.kind == "valve" and "link" in attrs:
                # a gate valve of the --valves layer: closing it closes its link
                self.link_of_valve[row.id] = str(attrs["link"])
                if row.valve_state == "closed":
                    self.closed_links.add(str(attrs["link"]))
                continue
            node_type = NODE_TYPES.get(str(attrs.get("epanet_type", row.kind)))
            if node_type is None:
                continue  # EPANET valve nodes become links (see links())
            node = dict(attrs.get("wntr") or {})
            node |= {"name": row.code, "node_type": node_type}
            node["coordinates"] = list(self.rows.node_xy[row.id])
            ground = _number(row.ground_z)
            if node_type != "Reservoir" and ground is not None:
                node["elevation"] = ground - self.height
            self._named_node_attrs(node, attrs)
            self.node_id[row.code] = row.id
            self.node_kind[row.code] = node_type.lower()
            out.append(node)
        return out

    @staticmethod
    def _named_node_attrs(node: dict[str, Any], attrs: dict[str, Any]) -> None:
        if node["node_type"] == "Junction" and attrs.get("base_demand_m3s") is not None:
            demands = node.get("demand_timeseries_list") or [
                {"base_val": 0.0, "pattern_name": None, "category": None}
            ]
            demands[0] = dict(demands[0]) | {"base_val": float(attrs["base_demand_m3s"])}
            node["demand_timeseries_list"] = demands
        if node["node_type"] == "Reservoir" and attrs.get("base_head_m") is not None:
            node["base_head"] = float(attrs["base_head_m"])
        if node["node_type"] == "Tank":
            for key in ("diameter", "min_level", "max_level", "init_level"):
                if attrs.get(f"{key}_m") is not None:
                    node[key] = float(attrs[f"{key}_m"])

    def links(self) -> list[dict[str, Any]]:
        groups: dict[str, list[Any]] = defaultdict(list)
        valves: dict[str, list[Any]] = defaultdict(list)
        for row in self.rows.segments:
            attrs = row.attrs or {}
            if row.link_type == "valve" and "valve" in attrs:
                valves[str(attrs["valve"])].append(row)
            elif row.link_type in LINK_TYPES:
                groups[str(attrs.get("source_link", row.code))].append(row)
        out = [self._link(name, pieces) for name, pieces in groups.items()]
        out += [self._valve(name, halves) for name, halves in valves.items()]
        for link in out:
            if link["name"] in self.closed_links:
                link["initial_status"] = "Closed"
        return out

    def _chain(self, name: str, pieces: list[Any]) -> list[Any]:
        """The pieces of one cut link in start-to-end order (the cut keeps their direction)."""
        if len(pieces) == 1:
            return pieces
        by_start = {p.start_node_id: p for p in pieces}
        ends = {p.end_node_id for p in pieces}
        first = [p for p in pieces if p.start_node_id not in ends]
        if len(first) != 1:
            raise InvalidInput(f"dataset {self.dataset_id}: the pieces of link {name} do not chain")
        chain = [first[0]]
        while chain[-1].end_node_id in by_start and len(chain) < len(pieces):
            chain.append(by_start[chain[-1].end_node_id])
        return chain

    def _link(self, name: str, pieces: list[Any]) -> dict[str, Any]:
        chain = self._chain(name, pieces)
        main = next((p for p in chain if (p.attrs or {}).get("piece") != "stub"), chain[0])
        attrs = main.attrs or {}
        link = dict(attrs.get("wntr") or {})
        link_type = LINK_TYPES[main.link_type]
        link |= {
            "name": name,
            "link_type": link_type,
            "start_node_name": self.rows.node_code[chain[0].start_node_id],
            "end_node_name": self.rows.node_code[chain[-1].end_node_id],
            "vertices": [v for p in chain for v in self.rows.vertices.get(p.id, [])],
        }
        for piece in chain:
            self.link_of_segment[piece.id] = name
        if link_type == "Pipe":
            length = _number(attrs.get("length_m"))
            if length is None:
                length = sum(_number(p.length_m) or 0.0 for p in chain)
                self.defaults.append(f"pipe {name}: length from the stored geometry")
            link["length"] = length
            diameter = _number(main.diameter_mm)
            if diameter is not None:
                link["diameter"] = diameter / 1000.0
            for key in ("roughness", "minor_loss", "check_valve"):
                if attrs.get(key) is not None:
                    link[key] = attrs[key]
        status = attrs.get("status")
        if status == "closed":
            link["initial_status"] = "Closed"
        elif status == "open" and str(link.get("initial_status", "Open")).lower() == "closed":
            link["initial_status"] = "Open"
        return link

    def _valve(self, name: str, halves: list[Any]) -> dict[str, Any]:
        """An EPANET valve from its two halves and the valve node between them."""
        chain = self._chain(name, halves)
        middle = chain[0].end_node_id
        node = self.rows.node_row[middle]
        attrs = node.attrs or {}
        link = dict(attrs.get("wntr") or {})
        link |= {
            "name": name,
            "link_type": "Valve",
            "start_node_name": self.rows.node_code[chain[0].start_node_id],
            "end_node_name": self.rows.node_code[chain[-1].end_node_id],
            "vertices": [],
        }
        link.setdefault("valve_type", attrs.get("valve_type", "TCV"))
        if attrs.get("setting") is not None:
            link["initial_setting"] = attrs["setting"]
        if _number(attrs.get("diameter_mm")) is not None:
            link["diameter"] = float(attrs["diameter_mm"]) / 1000.0
        if node.valve_state == "closed":
            link["initial_status"] = "Closed"
        for half in chain:
            self.link_of_segment[half.id] = name
        self.link_of_valve[middle] = name
        return link

"""Isolation valves from a WNTR-style valve layer (``link,node[,state]`` CSV) put on the pipes.

EPANET files hold no gate valves, yet burst isolation needs them. WNTR's valve layer (what
``wntr.network.generate_valve_layer(...).to_csv(path)`` writes, optionally with a ``state``
column) names each valve by the link it sits on and the node it protects. Each becomes a
``valve`` node on that link, ``min(VALVE_OFFSET_M, length / 10)`` from the node along the
link's 2D polyline (vertices included); the link is cut there. The piece between the valves
(or away from the single valve) keeps the link's code, so analyses and features still find the
pipe by its EPANET name; the short piece between a node and its valve is ``LINK#NODE``. Every
piece carries ``source_link`` and ``piece`` (``main`` | ``stub``) in its attrs; every valve node
``link``, ``node``, ``offset_m`` and the layer's file name. Bad rows are refused before anything
is written; identical rows are counted once (as WNTR's ``valve_segments`` does), with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from cim.errors import ImportFailed
from importers.pipes.network import Network, node_frame

VALVE_OFFSET_M = 1.0
"""Distance (m, along the pipe) from the protected node to the valve, at most length / 10."""
VALVE_STATES = ("open", "closed", "broken", "inaccessible")
COLUMNS = ("link", "node", "state")
VALVE_NODE_COLUMNS = (
    "code", "x", "y", "ground_z", "kind", "valve_state", "utility", "subclass", "attrs",
)  # fmt: skip
FloatArray = npt.NDArray[np.float64]


def read_valve_layer(path: Path) -> pd.DataFrame:
    """The layer's rows as a frame of ``link``, ``node``, ``state``, ``line`` (file line number)."""
    try:
        table = pd.read_csv(
            path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        raise ImportFailed(
            f"{path.name}: empty valve layer; expected the columns link,node"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        message = " ".join(str(exc).split())
        raise ImportFailed(f"{path.name}: not a readable valve layer CSV: {message}") from None
    table.columns = [str(c).strip() for c in table.columns]
    if len(table.columns) and (table.columns[0] == "" or table.columns[0].startswith("Unnamed:")):
        table = table.iloc[:, 1:]  # the index column pandas writes with DataFrame.to_csv
    missing = [c for c in ("link", "node") if c not in table.columns]
    if missing:
        raise ImportFailed(
            f"{path.name}: valve layer lacks column(s) {', '.join(missing)}; expected link,node"
            f"[,state] (found {', '.join(map(repr, table.columns)) or 'none'})"
        )
    unknown = [c for c in table.columns if c not in COLUMNS]
    if unknown:
        raise ImportFailed(
            f"{path.name}: unknown valve layer column(s) {', '.join(map(repr, unknown))}; "
            f"the columns are {', '.join(COLUMNS)}"
        )
    rows = pd.DataFrame(
        {
            "link": table["link"].str.strip(),
            "node": table["node"].str.strip(),
            "state": (table["state"] if "state" in table else pd.Series("", index=table.index))
            .str.strip()
            .str.lower()
            .replace("", "open"),
            "line": np.arange(len(table)) + 2,
        }
    )
    empty = rows[(rows["link"] == "") | (rows["node"] == "")]
    if len(empty):
        raise ImportFailed(f"{path.name}: empty link or node at line(s) {_lines(empty)}")
    bad_state = rows[~rows["state"].isin(VALVE_STATES)]
    if len(bad_state):
        first = bad_state.iloc[0]
        raise ImportFailed(
            f"{path.name}: line {first['line']}: valve state {first['state']!r}; one of "
            f"{', '.join(VALVE_STATES)}"
        )
    return rows


def add_valve_layer(network: Network, path: Path) -> Network:
    """``network`` with the layer's valves as nodes on their links, the links cut at them."""
    rows = read_valve_layer(path)
    rows, duplicates = _dedupe(rows, path)
    segments = network.segments
    by_code = {str(code): i for i, code in enumerate(segments["code"])}
    _check_rows(rows, segments, by_code, path)
    nodes = network.nodes
    node_row = {str(code): i for i, code in enumerate(nodes["code"])}
    xy = nodes[["x", "y"]].to_numpy(dtype=np.float64)
    ground = nodes["ground_z"].to_numpy(dtype=np.float64)

    def ends(start: str, end: str) -> tuple[FloatArray, FloatArray, FloatArray]:
        a, b = node_row[start], node_row[end]
        return xy[a], xy[b], ground[[a, b]]

    valves_by_link: dict[str, dict[str, Any]] = {}
    for row in rows.itertuples(index=False):
        valves_by_link.setdefault(row.link, {})[row.node] = row
    new_nodes: list[dict[str, Any]] = []
    pieces: dict[int, list[dict[str, Any]]] = {}  # segment row -> the pieces replacing it
    for link, valves in valves_by_link.items():
        i = by_code[link]
        link_nodes, pieces[i] = _cut(segments.iloc[i].to_dict(), valves, ends, path.name)
        new_nodes += link_nodes
    stubs = {p["code"] for group in pieces.values() for p in group if p["attrs"]["piece"] == "stub"}
    clash = sorted((set(node_row) & {n["code"] for n in new_nodes}) | (set(by_code) & stubs))
    if clash:
        raise ImportFailed(
            f"{path.name}: valve or stub codes clash with codes already in the network: "
            f"{', '.join(clash[:5])}"
        )
    out_segments = _splice(segments, pieces)
    added = node_frame(
        len(new_nodes), **{column: [n[column] for n in new_nodes] for column in VALVE_NODE_COLUMNS}
    )
    out_nodes = pd.concat([nodes, added], ignore_index=True)
    warnings = list(network.warnings)
    if duplicates:
        warnings.append(f"{path.name}: {duplicates} duplicate valve row(s) counted once")
    counts = dict(network.counts_by_type)
    counts["valve_layer"] = {"valves": len(rows), "duplicate_rows": duplicates}
    return Network(
        nodes=out_nodes,
        segments=out_segments,
        source_format=network.source_format,
        source_crs=network.source_crs,
        units=network.units,
        warnings=warnings,
        counts_by_type=counts,
        model=network.model,
    )


def _lines(rows: pd.DataFrame, limit: int = 5) -> str:
    lines = [str(n) for n in rows["line"].iloc[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(lines) + more


def _dedupe(rows: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, int]:
    """Identical rows once; one valve place given two different states is an error."""
    states = rows.groupby(["link", "node"], sort=False)["state"].nunique()
    conflict = states[states > 1]
    if len(conflict):
        link, node = conflict.index[0]
        clash = rows[(rows["link"] == link) & (rows["node"] == node)]
        raise ImportFailed(
            f"{path.name}: the valve on link {link} at node {node} is given different states "
            f"at lines {_lines(clash)}"
        )
    unique = rows.drop_duplicates(subset=["link", "node"], keep="first")
    return unique, len(rows) - len(unique)


def _check_rows(
    rows: pd.DataFrame, segments: pd.DataFrame, by_code: dict[str, int], path: Path
) -> None:
    """Every row names a pipe (or pump) of the network and one of that link's two end nodes."""
    is_valve = (segments["link_type"] == "valve").to_numpy()
    # an EPANET valve link is stored as two halves (NAME:a, NAME:b) around its valve node
    epanet_valves = {str(a.get("valve")) for a in segments["attrs"][is_valve] if a} | {
        str(c) for c in segments["code"][is_valve]
    }
    on_valve = rows[rows["link"].isin(list(epanet_valves))]
    if len(on_valve):
        raise ImportFailed(
            f"{path.name}: line {on_valve['line'].iloc[0]}: link {on_valve['link'].iloc[0]} is an "
            "EPANET valve, already a valve node; isolation valves go on pipes and pumps"
        )
    unknown = rows[~rows["link"].isin(list(by_code))]
    if len(unknown):
        names = ", ".join(unknown["link"].iloc[:5])
        raise ImportFailed(
            f"{path.name}: {len(unknown)} valve(s) on links the network does not have: {names} "
            f"(line(s) {_lines(unknown)})"
        )
    index = rows["link"].map(by_code).to_numpy()
    start = segments["start"].astype(str).to_numpy()[index]
    end = segments["end"].astype(str).to_numpy()[index]
    loops = rows[start == end]
    if len(loops):
        raise ImportFailed(
            f"{path.name}: line {loops['line'].iloc[0]}: link {loops['link'].iloc[0]} starts and "
            "ends at the same node, so a valve next to it has no single place"
        )
    node = rows["node"].to_numpy()
    not_end = rows[(node != start) & (node != end)]
    if len(not_end):
        first = not_end.iloc[0]
        i = by_code[first["link"]]
        raise ImportFailed(
            f"{path.name}: {len(not_end)} valve(s) name a node that is not an end of their link; "
            f"line {first['line']}: link {first['link']} joins {segments['start'].iloc[i]} and "
            f"{segments['end'].iloc[i]}, not {first['node']}"
        )


def _cut(
    link: dict[str, Any],
    valves: dict[str, Any],
    ends: Callable[[str, str], tuple[FloatArray, FloatArray, FloatArray]],
    layer_name: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Valve node rows and the pieces replacing one link (in start-to-end order)."""
    start, end, code = str(link["start"]), str(link["end"]), str(link["code"])
    first_xy, last_xy, ground = ends(start, end)
    inner = link["vertices"]
    line = np.vstack(
        [
            first_xy,
            *(np.asarray(inner, dtype=np.float64).reshape(-1, 2) if inner is not None else []),
            last_xy,
        ]
    )
    chainage = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    length = float(chainage[-1])
    offset = min(VALVE_OFFSET_M, length / 10.0)
    valve_nodes: list[dict[str, Any]] = []
    # stations along the link: its start node, the valves, its end node
    stations: list[tuple[str, float]] = [(start, 0.0)]
    for node, at in ((start, offset), (end, length - offset)):
        if node not in valves:
            continue
        valve = valves[node]
        x, y = _point_at(line, chainage, at)
        valve_nodes.append(
            {
                "code": f"V:{code}:{node}",
                "x": x,
                "y": y,
                "ground_z": _ground_at(ground, at / length if length > 0 else 0.0),
                "kind": "valve",
                "valve_state": valve.state,
                "utility": link["utility"],
                "subclass": link["subclass"],
                "attrs": {
                    "valve_layer": layer_name,
                    "line": int(valve.line),
                    "link": code,
                    "node": node,
                    "offset_m": round(offset, 6),
                },
            }
        )
        stations.append((f"V:{code}:{node}", at))
    stations.append((end, length))
    last = len(stations) - 2
    pieces = []
    for k in range(len(stations) - 1):
        (first, s0), (second, s1) = stations[k], stations[k + 1]
        # the piece between a valved node and its valve is a stub; the rest keeps the code
        stub_at = (
            start if k == 0 and start in valves else end if k == last and end in valves else None
        )
        piece = dict(link)
        piece["code"] = f"{code}#{stub_at}" if stub_at is not None else code
        piece["start"], piece["end"] = first, second
        between = (chainage > s0 + 1e-9) & (chainage < s1 - 1e-9)
        piece["vertices"] = line[between] if between.any() else None
        if k > 0:  # a cut end has no source elevation or depth
            for column in ("start_invert", "start_top", "start_depth"):
                piece[column] = np.nan
        if k < last:
            for column in ("end_invert", "end_top", "end_depth"):
                piece[column] = np.nan
        piece["attrs"] = {
            **(link["attrs"] or {}),
            "source_link": code,
            "piece": "main" if stub_at is None else "stub",
        }
        pieces.append(piece)
    return valve_nodes, pieces


def _point_at(line: FloatArray, chainage: FloatArray, at: float) -> tuple[float, float]:
    x = float(np.interp(at, chainage, line[:, 0]))
    y = float(np.interp(at, chainage, line[:, 1]))
    return x, y


def _ground_at(ground: FloatArray, fraction: float) -> float:
    """Ground at a fraction of the way along: linear between the ends, or the one end known."""
    first, last = float(ground[0]), float(ground[1])
    if np.isnan(first) or np.isnan(last):
        return last if np.isnan(first) else first
    return first + (last - first) * fraction


def _splice(segments: pd.DataFrame, pieces: dict[int, list[dict[str, Any]]]) -> pd.DataFrame:
    """``segments`` with each cut link replaced, in place, by its pieces."""
    records: list[dict[str, Any]] = []
    for i, row in enumerate(segments.to_dict("records")):
        records.extend(pieces.get(i, [row]))
    return pd.DataFrame.from_records(records, columns=segments.columns)

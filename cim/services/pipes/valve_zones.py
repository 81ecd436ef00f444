"""Valve zones: for every segment at once, the segments a burst there cuts off when every operable
valve closes - the connected components of the network cut at its operable valves.

Why: a burst in a poorly valved district walks tens of thousands of segments. The walk of
:func:`cim.services.pipes.isolation.isolate` is Python, one node at a time, and on a loaded
server it held a worker's GIL long enough to slow every other request of that process
(``bench/load.py``: a tenth of the isolations on the generated city cut off 84k segments).
Computed once per cached graph with scipy's connected components, a zone is then a slice of a
sorted array. Failed valves (walked through) and hidden classes (never entered) change the
zones, so isolation falls back to the walk for those requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cim.services.pipes.graph import FAILED_VALVE_STATES, IntArray, PipeGraph

WALKED, TO_CLOSE, CLOSED, PASSED = 0, 1, 2, 3
"""What a node reached by a burst is: walked through, an open valve to close, a valve already
closed, a failed valve walked through."""


@dataclass(frozen=True)
class ValveZones:
    """Segment indices grouped by zone (``order`` sorted by zone label, ``start`` the first
    position of each label) and the role of every node."""

    labels: IntArray
    order: IntArray
    start: IntArray
    node_role: np.ndarray[tuple[int], np.dtype[np.int8]]

    def segments(self, segment: int) -> IntArray:
        """The sorted segment indices of ``segment``'s zone."""
        label = int(self.labels[segment])
        return np.sort(self.order[self.start[label] : self.start[label + 1]])


def node_roles(graph: PipeGraph) -> np.ndarray[tuple[int], np.dtype[np.int8]]:
    """The role of each node when a walk reaches it (see :data:`WALKED` and the others)."""
    roles = np.full(graph.node_count, WALKED, dtype=np.int8)
    for node, state in enumerate(graph.node_valve_state):
        if not graph.is_valve(node):
            continue
        if state in FAILED_VALVE_STATES:
            roles[node] = PASSED
        else:
            roles[node] = CLOSED if state == "closed" else TO_CLOSE
    return roles


def valve_zones(graph: PipeGraph) -> ValveZones:
    """The zones of ``graph`` (computed once, kept with the cached graph)."""
    cached = graph._lists.get("valve_zones")
    if isinstance(cached, ValveZones):
        return cached
    roles = node_roles(graph)
    ptr = np.asarray(graph.incidence_ptr, dtype=np.int64)
    incident = np.asarray(graph.incidence_seg, dtype=np.int64)
    owner = np.repeat(np.arange(graph.node_count), np.diff(ptr))
    # Segments meeting at a node the walk passes through are in one zone: chain each such node's
    # incident segments (consecutive entries of its slice of the incidence list).
    same = owner[:-1] == owner[1:]
    through = (roles[owner[:-1]] == WALKED) | (roles[owner[:-1]] == PASSED)
    keep = same & through
    count = graph.segment_count
    edges = coo_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (incident[:-1][keep], incident[1:][keep])),
        shape=(count, count),
    )
    _, labels = connected_components(edges, directed=False)
    labels = labels.astype(np.int64)
    order = np.argsort(labels, kind="stable")
    start = np.searchsorted(labels[order], np.arange(int(labels.max(initial=-1)) + 2))
    zones = ValveZones(labels, order, start, roles)
    graph._lists["valve_zones"] = zones
    return zones

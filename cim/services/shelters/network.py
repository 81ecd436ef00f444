"""Along-road distances between population units and shelter sites (``distance: network``).

The model, for a unit point ``u`` (its point on surface) and a shelter site ``s`` (point or
polygon):

* **Access legs.** Each is joined to the nearest point of the nearest road segment (GiST-like
  STRtree look-up), which splits that segment virtually; the straight distance to it - the
  access leg - counts in the distance. A unit or site with no road within ``access_max_m`` is not
  on the network: such a unit is ``out_of_reach`` (unless it lies inside a site polygon), such a
  site serves only the units inside it. A polygon site's access point is the road point nearest
  to the polygon (its leg is 0 when a road touches the site).
* **Distance** = unit leg + shortest path along the roads between the two access points + site
  leg; two access points on the same segment may also go straight along it. A unit inside a site
  polygon is at distance 0, as in the straight-line metric. Every path is a real walk from the
  unit to the site, so it is never shorter than the straight line.
* **Candidate pairs, never all pairs.** One Dijkstra per site (scipy ``csgraph``, sites batched)
  from a virtual node joined to both ends of its access segment, with ``limit`` = the radius of
  its level: it visits only the site's neighbourhood. Units on segments that touch a reached node
  (or on the site's own segment) are the candidates; those within the radius are kept.

Known limit: the nearest road is taken whatever lies between (a unit on a river bank may be
joined to the road across the water); keep ``access_max_m`` below the width of such barriers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from cim.bounds import check_deadline
from cim.services.roads.graph import FloatArray, IntArray, RoadGraph, min_edges
from cim.services.shelters.models import NetworkPairFigures

BATCH_CELLS = 4_000_000  # distances held at once per Dijkstra batch (sites x nodes), 32 MB


@dataclass
class Access:
    """Where each geometry joins the network: segment (-1: none in reach), offset, leg."""

    segment: IntArray
    offset: FloatArray
    leg: FloatArray

    @property
    def joined(self) -> npt.NDArray[np.bool_]:
        return self.segment >= 0


def snap(graph: RoadGraph, geoms: npt.NDArray[np.object_], access_max_m: float) -> Access:
    """The nearest road point of each geometry within ``access_max_m`` (offset along its segment).

    Examples
    --------
    >>> from cim.services.roads.graph import graph_from_lines
    >>> g = graph_from_lines(np.array([shapely.LineString([(0, 0), (100, 0)])]))
    >>> a = snap(g, np.array([shapely.Point(30, 40), shapely.Point(30, 400)]), 50.0)
    >>> a.segment.tolist(), a.offset.tolist(), a.leg.tolist()
    ([0, -1], [30.0, 0.0], [40.0, inf])
    """
    n = len(geoms)
    access = Access(
        segment=np.full(n, -1, dtype=np.int64),
        offset=np.zeros(n, dtype=np.float64),
        leg=np.full(n, np.inf, dtype=np.float64),
    )
    if n == 0 or graph.segment_count == 0:
        return access
    # Without max_distance GEOS runs a plain nearest-neighbour search (faster than its bounded
    # variant, which first collects every segment in the box); too-far ones are dropped after.
    found, distance = graph.tree.query_nearest(geoms, return_distance=True, all_matches=False)
    near = distance <= access_max_m
    which, segment = found[0][near].astype(np.int64), found[1][near].astype(np.int64)
    distance = distance[near]
    lines = graph.segments[segment]
    on_road = shapely.get_point(shapely.shortest_line(geoms[which], lines), 1)
    access.segment[which] = segment
    access.leg[which] = distance
    access.offset[which] = np.clip(
        shapely.line_locate_point(lines, on_road), 0.0, graph.segment_length[segment]
    )
    return access


@dataclass
class NetworkPairs:
    """Unit-site pairs within reach along the roads, with their distance, and run figures."""

    unit: IntArray
    site: IntArray
    distance: FloatArray
    stats: NetworkPairFigures


def _members(pointer: IntArray, values: IntArray, keys: IntArray) -> IntArray:
    """Concatenated CSR rows ``keys`` (values[pointer[k]:pointer[k+1]] for each k)."""
    counts = pointer[keys + 1] - pointer[keys]
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(pointer[keys], counts)
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    picked: IntArray = values[starts + within]
    return picked


def _index(keys: IntArray, values: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """CSR pointer and values grouping ``values`` by ``keys`` in 0..size-1."""
    order = np.argsort(keys, kind="stable")
    pointer = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=size))]).astype(np.int64)
    return pointer, values[order]


@dataclass
class _Walk:
    """Units and sites joined to the roads, ready for one Dijkstra per site.

    Units are indexed by the nodes their segment touches (``node_ptr``/``node_units``) and by
    their segment (``seg_ptr``/``seg_units``, a site on the same segment). ``augmented`` is the
    road graph plus a virtual node ``node_count + j`` per site ``j`` in ``on`` (the sites whose
    access leg is within their radius) with one-way edges to both ends of its segment.
    """

    unit: Access
    site: Access
    on: IntArray
    node_ptr: IntArray
    node_units: IntArray
    seg_ptr: IntArray
    seg_units: IntArray
    augmented: Any
    unit_start: IntArray
    unit_end: IntArray
    unit_length: FloatArray


def _prepare(graph: RoadGraph, unit: Access, site: Access, site_radius: FloatArray) -> _Walk:
    """Index the joined units and add the sites to the graph as virtual nodes."""
    from scipy.sparse import csr_array

    n_nodes = graph.node_count
    joined = np.flatnonzero(unit.joined)
    seg = unit.segment[joined]
    node_ptr, node_units = _index(
        np.concatenate([graph.segment_start[seg], graph.segment_end[seg]]),
        np.concatenate([joined, joined]),
        n_nodes,
    )
    seg_ptr, seg_units = _index(seg, joined, graph.segment_count)
    on = np.flatnonzero(site.joined & (site.leg <= site_radius))
    site_seg = site.segment[on]
    to_start = site.leg[on] + site.offset[on]
    to_end = site.leg[on] + graph.segment_length[site_seg] - site.offset[on]
    road = graph.adjacency.tocoo()
    rows, cols, weights = min_edges(
        np.concatenate([road.row, n_nodes + on, n_nodes + on]).astype(np.int64),
        np.concatenate(
            [road.col, graph.segment_start[site_seg], graph.segment_end[site_seg]]
        ).astype(np.int64),
        np.concatenate([road.data, to_start, to_end]),
    )
    size = n_nodes + len(site.segment)
    unit_seg = np.maximum(unit.segment, 0)
    return _Walk(
        unit=unit,
        site=site,
        on=on,
        node_ptr=node_ptr,
        node_units=node_units,
        seg_ptr=seg_ptr,
        seg_units=seg_units,
        augmented=csr_array((weights, (rows, cols)), shape=(size, size), dtype=np.float64),
        unit_start=graph.segment_start[unit_seg],
        unit_end=graph.segment_end[unit_seg],
        unit_length=graph.segment_length[unit_seg],
    )


def _site_pairs(
    walk: _Walk, row: FloatArray, j: int, radius: float, n_nodes: int
) -> tuple[IntArray, FloatArray]:
    """Units within ``radius`` of site ``j`` given its Dijkstra distances ``row`` to the nodes."""
    nodes = np.flatnonzero(np.isfinite(row[:n_nodes]))
    s = int(walk.site.segment[j])
    candidates = np.unique(
        np.concatenate(
            [
                _members(walk.node_ptr, walk.node_units, nodes),
                walk.seg_units[walk.seg_ptr[s] : walk.seg_ptr[s + 1]],
            ]
        )
    )
    if len(candidates) == 0:
        return candidates, np.zeros(0, dtype=np.float64)
    unit = walk.unit
    t = unit.offset[candidates]
    along = np.minimum(
        t + row[walk.unit_start[candidates]],
        walk.unit_length[candidates] - t + row[walk.unit_end[candidates]],
    )
    same = unit.segment[candidates] == s
    along[same] = np.minimum(along[same], np.abs(t[same] - walk.site.offset[j]) + walk.site.leg[j])
    distance = unit.leg[candidates] + along
    keep = distance <= radius
    return candidates[keep], distance[keep]


def _walk_sites(
    walk: _Walk, site_radius: FloatArray, n_nodes: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """One radius-limited Dijkstra per reachable site (batched by radius): the pairs found."""
    from scipy.sparse.csgraph import dijkstra

    out_unit: list[IntArray] = []
    out_site: list[IntArray] = []
    out_distance: list[FloatArray] = []
    batch = max(1, BATCH_CELLS // max(walk.augmented.shape[0], 1))
    on = walk.on
    for radius in np.unique(site_radius[on]):
        group = on[site_radius[on] == radius]
        for first in range(0, len(group), batch):
            chunk = group[first : first + batch]
            check_deadline("shelters: road distances from the sites")
            reach = dijkstra(
                walk.augmented, directed=True, indices=n_nodes + chunk, limit=float(radius)
            )
            for row, j in zip(np.atleast_2d(reach), chunk.tolist(), strict=True):
                units, distance = _site_pairs(walk, row, j, float(radius), n_nodes)
                if len(units) == 0:
                    continue
                out_unit.append(units)
                out_site.append(np.full(len(units), j, dtype=np.int64))
                out_distance.append(distance)
    return (
        np.concatenate(out_unit) if out_unit else np.zeros(0, dtype=np.int64),
        np.concatenate(out_site) if out_site else np.zeros(0, dtype=np.int64),
        np.concatenate(out_distance) if out_distance else np.zeros(0, dtype=np.float64),
    )


def network_pairs(
    graph: RoadGraph,
    unit_xy: FloatArray,
    sites: npt.NDArray[np.object_],
    site_radius: FloatArray,
    *,
    access_max_m: float,
    units_mask: npt.NDArray[np.bool_] | None = None,
) -> NetworkPairs:
    """Pairs (unit, site) whose along-road distance is within the site's radius.

    ``unit_xy`` are unit points (n x 2), ``sites`` site geometries, ``site_radius`` per site;
    ``units_mask`` leaves units out (e.g. those without residents).
    """
    started = time.perf_counter()
    wanted = np.ones(len(unit_xy), dtype=bool) if units_mask is None else units_mask
    points = np.asarray(shapely.points(unit_xy[:, 0], unit_xy[:, 1]), dtype=object).reshape(-1)
    unit = snap(graph, points, access_max_m)
    unit.segment[~wanted] = -1
    site = snap(graph, sites, access_max_m)
    walk = _prepare(graph, unit, site, site_radius)
    graph_s = time.perf_counter() - started
    found = _walk_sites(walk, site_radius, graph.node_count)
    dijkstra_s = time.perf_counter() - started - graph_s
    legs = unit.leg[unit.joined]
    stats: NetworkPairFigures = {
        "units_joined": int(unit.joined.sum()),
        "units_without_road": int((wanted & ~unit.joined).sum()),
        "sites_without_road": int((~site.joined).sum()),
        "mean_access_m": float(legs.mean()) if len(legs) else None,
        "max_access_m": float(legs.max()) if len(legs) else None,
        "seconds": {"setup": round(graph_s, 3), "dijkstra": round(dijkstra_s, 3)},
    }
    return NetworkPairs(*_merge_inside(points, wanted, sites, *found), stats=stats)


def _merge_inside(
    points: npt.NDArray[np.object_],
    wanted: npt.NDArray[np.bool_],
    sites: npt.NDArray[np.object_],
    unit: IntArray,
    site: IntArray,
    distance: FloatArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """Add units lying inside a site polygon at distance 0 (replacing any road distance)."""
    polygons = np.flatnonzero(shapely.get_type_id(sites) != 0)
    if len(polygons):
        tree = shapely.STRtree(points)
        found = tree.query(sites[polygons], predicate="intersects")
        inside_unit = found[1].astype(np.int64)
        inside_site = polygons[found[0]].astype(np.int64)
        keep = wanted[inside_unit]
        inside_unit, inside_site = inside_unit[keep], inside_site[keep]
        if len(inside_unit):
            unit = np.concatenate([inside_unit, unit])
            site = np.concatenate([inside_site, site])
            distance = np.concatenate([np.zeros(len(inside_unit)), distance])
            # Keep the first (inside, distance 0) of each (unit, site).
            _, first = np.unique(unit * (len(sites) + 1) + site, return_index=True)
            first.sort()
            unit, site, distance = unit[first], site[first], distance[first]
    return unit, site, distance

"""GeoJSON highlights of pipe answers: segment and node features, collections, reprojection."""

from __future__ import annotations

from typing import Literal

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.services.pipes.sections import class_info
from cim.services.results import Feature, FeatureCollection, named_crs


def segment_features(session: Session, ids: list[int], *, role: str) -> list[Feature]:
    """GeoJSON features (storage CRS) of segments, for viewer highlights; ``role`` in properties."""
    if not ids:
        return []
    rows = session.execute(
        text(
            """
            SELECT id, code, utility, ST_AsGeoJSON(geom, 3)::json FROM pipe_segment
            WHERE id = ANY(:ids) ORDER BY id
            """
        ),
        {"ids": ids},
    ).all()
    return [
        {
            "type": "Feature",
            "id": f"pipe_segment.{r[0]}",
            "geometry": r[3],
            "properties": {
                "layer": "pipe_segment",
                "id": r[0],
                "code": r[1],
                "utility": r[2],
                "role": role,
                **class_info(r[2]),
            },
        }
        for r in rows
    ]


def node_features(session: Session, ids: list[int], *, role: str) -> list[Feature]:
    """GeoJSON features of nodes (valves to close, start points...) with ``role``."""
    if not ids:
        return []
    rows = session.execute(
        text(
            """
            SELECT id, code, utility, kind, valve_state, ST_AsGeoJSON(geom, 3)::json
            FROM pipe_node WHERE id = ANY(:ids) ORDER BY id
            """
        ),
        {"ids": ids},
    ).all()
    return [
        {
            "type": "Feature",
            "id": f"pipe_node.{r[0]}",
            "geometry": r[5],
            "properties": {
                "layer": "pipe_node",
                "id": r[0],
                "code": r[1],
                "utility": r[2],
                "kind": r[3],
                "valve_state": r[4],
                "role": role,
            },
        }
        for r in rows
    ]


#: One part of a highlight: segments or nodes, their ids (in the order to keep) and their role.
HighlightPart = tuple[Literal["segment", "node"], list[int], str]


def highlight(
    session: Session, parts: list[HighlightPart], srid: int, output_crs: str | None = None
) -> FeatureCollection:
    """The map highlight of an analysis: the parts' features in order, at most the request's
    cap (``CIM_MAX_HIGHLIGHT_FEATURES``); beyond it the first ones only, with ``truncated``,
    ``numberMatched`` (all of them) and ``numberReturned`` - the answer's counts stay exact."""
    matched = sum(len(ids) for _, ids, _ in parts)
    room = bounds.current().highlight_room(matched)
    features: list[Feature] = []
    taken = 0
    for kind, ids, role in parts:
        chosen = ids[: room - taken]
        taken += len(chosen)
        build = segment_features if kind == "segment" else node_features
        features += build(session, chosen, role=role)
    collection = feature_collection(features, srid, output_crs)
    if room < matched:
        collection["truncated"] = True
        collection["numberMatched"] = matched
        collection["numberReturned"] = len(features)
    return collection


def feature_collection(
    features: list[Feature], srid: int, output_crs: str | None = None
) -> FeatureCollection:
    """A GeoJSON FeatureCollection of storage-CRS ``features``, named with a ``crs`` member;
    moved to ``output_crs`` when one is given."""
    collection: FeatureCollection = {
        "type": "FeatureCollection",
        "crs": named_crs(srid),
        "features": features,
    }
    return collection if output_crs is None else reproject_features(collection, srid, output_crs)


def reproject_features(collection: FeatureCollection, srid: int, target: str) -> FeatureCollection:
    """A storage-CRS FeatureCollection in ``target`` (e.g. ``EPSG:4326`` for web maps); Z kept."""
    from cim.crs import crs_label, parse_crs, transformer

    move = transformer(srid, target)
    features: list[Feature] = []
    for feature in collection["features"]:
        geom = shapely.geometry.shape(feature["geometry"])
        moved = shapely.transform(
            geom,
            lambda xyz: np.column_stack([*move.transform(xyz[:, 0], xyz[:, 1]), xyz[:, 2]]),
            include_z=True,
        )
        features.append(feature | {"geometry": shapely.geometry.mapping(moved)})
    label = crs_label(parse_crs(target))
    code = label.split(":", 1)[1] if label.startswith("EPSG:") else label
    return collection | {"features": features, "crs": named_crs(code)}

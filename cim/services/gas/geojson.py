"""The map of an adjacent-space answer: gas pipes, the spaces and a distance line for each.

Spaces carry their bottom height as z (a well is drawn down to it, a basement footprint at its
floor); a distance line runs from the space's point nearest the gas pipe, at the space's bottom,
to the pipe's centreline - so the viewer shows the horizontal distance and the vertical relation
at once. Heights the data does not give fall back to the pipe's, then to 0.
"""

from __future__ import annotations

import shapely
from shapely.ops import nearest_points
from sqlalchemy.orm import Session

from cim import bounds
from cim.services.gas.gas_pipes import GasPipe
from cim.services.gas.models import AdjacentSpace
from cim.services.gas.spaces import Space
from cim.services.pipes.geojson import feature_collection, segment_features
from cim.services.results import Feature, FeatureCollection


def adjacency_geojson(
    session: Session,
    listed: list[AdjacentSpace],
    spaces: list[Space],
    pipes: dict[int, GasPipe],
    srid: int,
    output_crs: str | None,
) -> FeatureCollection:
    """Gas pipes named by the listed spaces, then each space and its distance line (capped)."""
    by_key = {(s.layer, s.id): s for s in spaces}
    gas_ids = sorted({a.gas_pipe.id for a in listed})
    matched = len(gas_ids) + 2 * len(listed)
    room = bounds.current().highlight_room(matched)
    features: list[Feature] = segment_features(session, gas_ids[:room], role="gas_pipe")
    for answer in listed:
        if len(features) + 2 > room:
            break
        space = by_key[(answer.layer, answer.id)]
        features += _space_features(answer, space, pipes[space.gas_id])
    collection = feature_collection(features, srid, output_crs)
    if len(features) < matched:
        collection["truncated"] = True
        collection["numberMatched"] = matched
        collection["numberReturned"] = len(features)
    return collection


def _space_features(answer: AdjacentSpace, space: Space, pipe: GasPipe) -> list[Feature]:
    on_space, on_pipe = nearest_points(space.geom, shapely.force_2d(pipe.line))
    centre = pipe.centre_z_at(on_pipe)
    bottom = space.bottom_z if space.bottom_z is not None else (centre or 0.0)
    pipe_z = centre if centre is not None else bottom
    key = f"{space.layer}.{space.id}"
    properties = {
        "layer": space.layer,
        "id": space.id,
        "code": space.code,
        "space_type": space.space_type,
        "utility": space.utility,
        "rank": answer.rank,
        "risk": answer.risk.score,
        "distance_m": answer.distance_m,
        "vertical_relation": answer.vertical_relation,
        "vertical_gap_m": answer.vertical_gap_m,
        "gas_pipe_id": pipe.id,
    }
    line = shapely.LineString([(on_space.x, on_space.y, bottom), (on_pipe.x, on_pipe.y, pipe_z)])
    return [
        {
            "type": "Feature",
            "id": key,
            "geometry": shapely.geometry.mapping(shapely.force_3d(space.geom, bottom)),
            "properties": properties | {"role": "space"},
        },
        {
            "type": "Feature",
            "id": f"distance.{key}",
            "geometry": shapely.geometry.mapping(line),
            "properties": properties | {"role": "distance"},
        },
    ]

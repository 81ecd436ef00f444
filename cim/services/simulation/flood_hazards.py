"""A flood's extents saved as hazard zones (kind ``flood``), so shelter plans can exclude them.

:func:`save_flood_hazards` runs the flood (:func:`cim.services.simulation.flood.run_flood`) and
stores, in the caller's transaction, a ``hazards`` dataset - the kind ``cim import hazards``
creates - with one ``hazard_zone`` per flooded node that has a DEM extent: the extent polygon,
``kind = 'flood'``, no severity, and in ``attrs`` the simulation (``source``,
``simulation_id``, the drainage dataset, the rain: ``return_period_years`` and
``duration_min`` of a design storm, both null for the model's own rain) and the node's figures
(volume, hours flooded, area, water level, max and mean depth). The dataset's options keep the
parameters. Nothing is stored when the flood has no extent (no node floods, or no DEM covers
the flooded nodes) or more flooded nodes than an answer may list: all or nothing.

The simulation id is a hash of what the zones come from: the SWMM input, the drainage dataset,
the DEM datasets (with their file hashes) and the extent polygons. It is the dataset's
``source_sha256``, so saving the same run twice stores it once (like importing a file twice).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.datasets import DatasetSource, begin_dataset, complete_dataset, dataset_summary
from cim.services.pipes.scope import session_srid
from cim.services.simulation.flood import DEFAULT_TAIL_H, FloodRun, run_flood
from cim.services.simulation.flood_extent import MAX_REACH_M
from cim.services.simulation.flood_models import FloodHazards, FloodHazardZone
from cim.services.simulation.storm import DesignStorm

HAZARD_KIND = "flood"
SOURCE = "flood_simulation"
MAX_NAME_LENGTH = 200

_INSERT_ZONE = text(
    """
    INSERT INTO hazard_zone (dataset_id, kind, severity, geom, attrs)
    VALUES (:dataset, :kind, NULL, ST_Multi(ST_GeomFromWKB(:wkb, :srid)), CAST(:attrs AS jsonb))
    RETURNING id
    """
)


def save_flood_hazards(
    session: Session,
    dataset_id: int,
    *,
    name: str,
    storm: DesignStorm | None = None,
    tail_h: float = DEFAULT_TAIL_H,
    output_crs: str | None = None,
    with_geojson: bool = True,
) -> FloodHazards:
    """Run the flood of drainage dataset ``dataset_id`` and store its extents as hazard dataset
    ``name`` (in the caller's transaction; the caller commits)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a hazard dataset needs a name of 1 to {MAX_NAME_LENGTH} characters")
    run = run_flood(
        session,
        dataset_id,
        storm=storm,
        tail_h=tail_h,
        with_extents=True,
        output_crs=output_crs,
        with_geojson=with_geojson,
    )
    answer = run.answer
    if answer.truncated:
        raise InvalidInput(
            f"{answer.totals.flooded_node_count} nodes flood, more than an answer may list "
            f"({len(answer.flooded_nodes)}): saving part of them would understate the hazard"
        )
    if not run.extents:
        why = "no node floods" if not answer.flooded_nodes else "no DEM covers the flooded nodes"
        raise InvalidInput(f"the flood has no extent to save as hazard zones: {why}")
    dems = _dem_hashes(session, run)
    simulation_id = _simulation_hash(run, dems)
    source = DatasetSource(
        kind="hazards",
        name=name,
        source_name=f"flood simulation flood-{simulation_id[:16]} of dataset {dataset_id}",
        source_sha256=simulation_id,
        options=_options(run, simulation_id, tail_h, dems),
    )
    start = begin_dataset(session, source=source, replace=False)
    dataset = start.dataset
    if start.created:
        zones = _write_zones(session, dataset.id, run, f"flood-{simulation_id[:16]}", tail_h)
        dataset = complete_dataset(
            session,
            dataset=dataset,
            counts={
                "zones": len(zones),
                "by_kind": {HAZARD_KIND: len(zones)},
                "area_m2": round(sum(z.area_m2 for z in zones), 2),
                "flood_volume_m3": round(sum(z.volume_m3 for z in zones), 3),
            },
            qc={
                "flooded_nodes_without_extent": len(answer.flooded_nodes) - len(zones),
                "zones_reaching_window_edge": sum(
                    1 for e in run.extents.values() if e.reaches_window_edge
                ),
            },
        )
    else:
        zones = stored_zones(session, dataset.id)
    return FloodHazards(
        simulation_id=f"flood-{simulation_id[:16]}",
        created=start.created,
        dataset=dataset_summary(dataset),
        zones=zones,
        flood=answer,
    )


def _dem_hashes(session: Session, run: FloodRun) -> dict[str, str]:
    ids = sorted({e.dem_dataset_id for e in run.extents.values()})
    rows = session.execute(
        text("SELECT id, source_sha256 FROM dataset WHERE id = ANY(:ids)"), {"ids": ids}
    ).all()
    return {str(r[0]): str(r[1]) for r in rows}


def _simulation_hash(run: FloodRun, dems: dict[str, str]) -> str:
    """sha256 of the zones' sources: SWMM input, drainage dataset, DEMs, extent polygons."""
    digest = hashlib.sha256()
    head = {"model": run.model_text, "dataset": run.answer.dataset_id, "dems": dems,
            "reach_m": MAX_REACH_M}  # fmt: skip
    digest.update(json.dumps(head, sort_keys=True).encode())
    for node_id in sorted(run.extents):
        digest.update(str(node_id).encode())
        digest.update(shapely.to_wkb(shapely.normalize(run.extents[node_id].geometry)))
    return digest.hexdigest()


def _rain(storm: DesignStorm | None, tail_h: float) -> dict[str, Any]:
    """The rain of the run as stored: the storm's parameters (its series is in the answer)."""
    if storm is None:
        return {"rain": "model", "return_period_years": None, "duration_min": None}
    return {
        "rain": "design_storm",
        "return_period_years": storm.return_period_a,
        "duration_min": storm.duration_min,
        "formula": storm.formula,
        "peak_ratio": storm.peak_ratio,
        "step_min": storm.step_min,
        "total_mm": storm.total_mm,
        "tail_h": tail_h,
    }


def _options(
    run: FloodRun, simulation_id: str, tail_h: float, dems: dict[str, str]
) -> dict[str, Any]:
    answer = run.answer
    return {
        "source": SOURCE,
        "simulation_id": f"flood-{simulation_id[:16]}",
        "drainage_dataset_id": answer.dataset_id,
        **_rain(answer.storm, tail_h),
        "run_start": answer.start,
        "run_end": answer.end,
        "dem_datasets": sorted(int(d) for d in dems),
        "flood_volume_m3": answer.totals.flood_volume_m3,
        "flooded_node_count": answer.totals.flooded_node_count,
    }


def _write_zones(
    session: Session, dataset_id: int, run: FloodRun, simulation_id: str, tail_h: float
) -> list[FloodHazardZone]:
    """One hazard zone per flooded node with an extent, largest volume first."""
    srid = session_srid(session)
    answer = run.answer
    rain = _rain(answer.storm, tail_h)
    zones = []
    for node in answer.flooded_nodes:
        extent, figures = run.extents.get(node.id), node.extent
        if extent is None or figures is None:
            continue
        attrs = {
            "source": SOURCE,
            "simulation_id": simulation_id,
            "drainage_dataset_id": answer.dataset_id,
            **rain,
            "node_id": node.id,
            "node_code": node.code,
            "volume_m3": node.volume_m3,
            "hours_flooded": node.hours_flooded,
            "area_m2": figures.area_m2,
            "water_level_m": figures.water_level_m,
            "max_depth_m": figures.max_depth_m,
            "mean_depth_m": figures.mean_depth_m,
            "reaches_window_edge": figures.reaches_window_edge,
            "dem_dataset_id": figures.dem_dataset_id,
        }
        zone_id = session.execute(
            _INSERT_ZONE,
            {"dataset": dataset_id, "kind": HAZARD_KIND, "srid": srid,
             "wkb": shapely.to_wkb(extent.geometry), "attrs": json.dumps(attrs)},
        ).scalar_one()  # fmt: skip
        zones.append(
            FloodHazardZone(
                id=int(zone_id),
                code=node.code,
                node_id=node.id,
                volume_m3=node.volume_m3,
                area_m2=figures.area_m2,
                max_depth_m=figures.max_depth_m,
            )
        )
    return zones


def stored_zones(session: Session, dataset_id: int) -> list[FloodHazardZone]:
    """The flood zones of a saved hazard dataset, in the order they were saved."""
    rows = session.execute(
        text(
            "SELECT id, attrs FROM hazard_zone WHERE dataset_id = :d AND kind = :kind ORDER BY id"
        ),
        {"d": dataset_id, "kind": HAZARD_KIND},
    ).all()
    return [
        FloodHazardZone(
            id=int(row[0]),
            code=str(row[1]["node_code"]),
            node_id=int(row[1]["node_id"]),
            volume_m3=float(row[1]["volume_m3"]),
            area_m2=float(row[1]["area_m2"]),
            max_depth_m=float(row[1]["max_depth_m"]),
        )
        for row in rows
    ]

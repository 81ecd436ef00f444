"""Difference analysis between two versions of a dataset (CJJ/T 315 "模型对比与差异分析").

Both versions are read with :func:`.timetravel.table_at` at the time each became current and
joined on the row id, which is stable across versions for features matched by key (see
:mod:`.merge`). A feature is *added*, *removed* or *changed*; a change names the attributes that
differ, gives their old and new values (``changes``: keys inside JSONB columns as
``attrs.<key>``; geometry columns are left out) and, when the geometry differs, how far it moved
(the Hausdorff distance in metres in plan, the largest distance any part moved) and whether its
shape changed (vertex count).
Counts are given per table and per utility class (pipes; other kinds count under ``""``); a
feature is named by its table's label column (:mod:`.tables`: a code, a name, a GlobalId) and
measured on its 2D footprint when it has no ``geom``. The features come as GeoJSON for the
viewer's "changes" view (added green, removed red, changed amber).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, case, func, literal_column, or_, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from cim import bounds
from cim.db.models import Dataset
from cim.errors import InvalidInput, NotFound
from cim.services.pipes.geojson import feature_collection
from cim.services.results import Feature, FeatureCollection, Result
from cim.services.versions.history import version_time
from cim.services.versions.tables import VERSIONED, VersionedTable
from cim.services.versions.timetravel import table_at

STATES = ("added", "removed", "changed")
SKIPPED = ("id", "dataset_id", "valid_from")


class ChangedFeature(Result):
    """One feature that differs between the two versions."""

    table: str
    id: int
    code: str | None
    utility: str | None
    state: str
    attributes: list[str]
    """Names of the attributes that differ (``geom`` when the geometry does)."""
    changes: dict[str, dict[str, Any]]
    """attribute -> ``{"from": old, "to": new}`` (JSON values; ``null`` when absent). Keys inside
    JSONB columns come as ``attrs.<key>``; geometry columns are not listed (see ``moved_m``)."""
    moved_m: float | None
    shape_changed: bool


class DatasetDiff(Result):
    """``GET /datasets/{id}/diff``: what changed from one version to another."""

    dataset_id: int
    from_version: int
    to_version: int
    summary: dict[str, dict[str, dict[str, int]]]
    """table -> utility class -> {added, removed, changed}."""
    totals: dict[str, int]
    features: list[ChangedFeature]
    geojson: FeatureCollection


def _side(spec: VersionedTable, moment: Any, dataset_id: int, name: str) -> Any:
    """The dataset's rows of ``spec`` as they were at ``moment``, as subquery ``name``."""
    rows = table_at(spec.table, (moment, moment)).subquery(f"{name}_all")
    return select(rows).where(rows.c.dataset_id == dataset_id).subquery(name)


def _named(column: str | None, a: Any, b: Any) -> Any:
    """A feature's ``column`` as text, from the newer side when it has one (or NULL)."""
    if column is None:
        return literal_column("NULL::text")
    return func.coalesce(b.c[column], a.c[column]).cast(Text)


def _changes_sql(spec: VersionedTable) -> str:
    """SQL of a changed pair's ``{attribute: {"from": old, "to": new}}`` (``{}`` otherwise)."""
    blobs = [c.name for c in spec.table.columns if isinstance(c.type, JSONB)]
    geometric = (*spec.geometry_columns, *spec.text_compared_columns)  # moved_m says it
    dropped = " - ".join(f"'{c}'" for c in (*SKIPPED, *geometric, *blobs))
    parts = [
        f"SELECT e.key, e.value, (to_jsonb(b) - {dropped}) -> e.key"
        f" FROM jsonb_each(to_jsonb(a) - {dropped}) e"
    ]
    for blob in blobs:
        keys = " UNION ".join(
            f"SELECT jsonb_object_keys(CASE WHEN jsonb_typeof({side}.{blob}) = 'object'"
            f" THEN {side}.{blob} ELSE '{{}}' END)"
            for side in "ab"
        )
        parts.append(f"SELECT '{blob}.' || k, a.{blob} -> k, b.{blob} -> k FROM ({keys}) keys(k)")
        # not an object on a side (never written so, but read back from history): the whole blob
        parts.append(
            f"SELECT '{blob}', a.{blob}, b.{blob} WHERE jsonb_typeof(a.{blob}) <> 'object'"
            f" OR jsonb_typeof(b.{blob}) <> 'object'"
        )
    union = " UNION ALL ".join(parts)
    return (
        "CASE WHEN a.id IS NOT NULL AND b.id IS NOT NULL THEN (SELECT coalesce("
        "jsonb_object_agg(d.k, jsonb_build_object('from', d.va, 'to', d.vb)), '{}'::jsonb)"
        f" FROM ({union}) d(k, va, vb) WHERE d.va IS DISTINCT FROM d.vb) ELSE '{{}}'::jsonb END"
    )


def _rows(session: Session, spec: VersionedTable, dataset_id: int, t1: Any, t2: Any) -> list[Any]:
    """(id, code, utility, moved_m, shape_changed, geometry, state, attributes, changes) of each
    feature that differs; rows valid in both versions with the same ``valid_from`` are shared."""
    a, b = _side(spec, t1, dataset_id, "a"), _side(spec, t2, dataset_id, "b")
    shape = spec.shape  # other geometries (an element's mesh) compare as attributes, by EWKB
    skipped = " - ".join(f"'{c}'" for c in (*SKIPPED, *([shape] if shape else [])))
    moved = (
        f"CASE WHEN a.id IS NOT NULL AND b.id IS NOT NULL"
        f" AND ST_AsEWKB(a.{shape}) IS DISTINCT FROM ST_AsEWKB(b.{shape})"
        f" THEN ST_HausdorffDistance(a.{shape}, b.{shape}) END"
        if shape is not None
        else "NULL::float8"
    )
    pairs = (
        select(
            func.coalesce(a.c.id, b.c.id).label("id"),
            _named(spec.label, a, b).label("code"),
            _named(spec.group, a, b).label("utility"),
            literal_column(moved).label("moved_m"),
            literal_column(
                f"coalesce(ST_NPoints(a.{shape}) <> ST_NPoints(b.{shape}), false)"
                if shape is not None
                else "false"
            ).label("shape_changed"),
            literal_column(
                f"ST_AsGeoJSON(coalesce(b.{shape}, a.{shape}), 3)::json"
                if shape is not None
                else "NULL::json"
            ).label("geometry"),
            literal_column(
                f"ARRAY(SELECT e.key FROM jsonb_each(to_jsonb(a) - {skipped}) e"
                f" WHERE e.value IS DISTINCT FROM (to_jsonb(b) - {skipped}) -> e.key"
                " ORDER BY e.key)"
            ).label("attributes"),
            literal_column(_changes_sql(spec)).label("changes"),
            a.c.id.is_(None).label("added"),
            b.c.id.is_(None).label("removed"),
        )
        .select_from(a.join(b, a.c.id == b.c.id, full=True))
        .where(a.c.valid_from.is_distinct_from(b.c.valid_from))
        .subquery("pairs")
    )
    state = case((pairs.c.added, "added"), (pairs.c.removed, "removed"), else_="changed")
    with_geom = pairs.c.attributes.op("||")(literal_column(f"ARRAY['{shape}']"))
    statement = (
        select(
            pairs.c.id, pairs.c.code, pairs.c.utility, pairs.c.moved_m, pairs.c.shape_changed,
            pairs.c.geometry, state,
            case(
                (or_(pairs.c.added, pairs.c.removed), literal_column("ARRAY[]::text[]")),
                (pairs.c.moved_m.is_not(None), with_geom),
                else_=pairs.c.attributes,
            ),
            pairs.c.changes,
        )
        .where(
            or_(
                pairs.c.added, pairs.c.removed, pairs.c.moved_m.is_not(None),
                func.cardinality(pairs.c.attributes) > 0,
            )
        )
        .order_by(pairs.c.id)
    )  # fmt: skip
    return list(session.execute(statement).all())


def _ordered(changes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``changes`` by attribute name, each ``from`` before ``to`` (JSONB orders keys by length)."""
    return {name: {"from": c["from"], "to": c["to"]} for name, c in sorted(changes.items())}


def dataset_diff(
    session: Session,
    *,
    dataset_id: int,
    srid: int,
    from_version: int | None = None,
    to_version: int | None = None,
    output_crs: str | None = None,
) -> DatasetDiff:
    """The differences of ``dataset_id`` between two versions (default: the last two)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.status != "ready":
        raise NotFound(f"dataset {dataset_id} does not exist")
    if dataset.kind not in VERSIONED:
        raise InvalidInput(f"{dataset.kind} datasets are not versioned (see the README)")
    last = session.execute(
        text("SELECT max(version) FROM dataset_version WHERE dataset_id = :d"), {"d": dataset_id}
    ).scalar_one()
    if last is None:  # rows written around the importers record no version to compare
        raise NotFound(f"dataset {dataset_id} has no recorded versions")
    to_v = int(last) if to_version is None else to_version
    from_v = max(to_v - 1, 1) if from_version is None else from_version
    t1, t2 = version_time(session, dataset_id, from_v), version_time(session, dataset_id, to_v)
    features: list[ChangedFeature] = []
    geo: list[Feature] = []
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for spec in VERSIONED[dataset.kind]:
        table_summary = summary.setdefault(spec.name, {})
        for fid, code, utility, moved, shape, geometry, state, attributes, changes in _rows(
            session, spec, dataset_id, t1, t2
        ):
            by_class = table_summary.setdefault(utility or "", dict.fromkeys(STATES, 0))
            by_class[state] += 1
            change = ChangedFeature(
                table=spec.name, id=fid, code=code, utility=utility, state=state,
                attributes=list(attributes), changes=_ordered(changes),
                moved_m=None if moved is None else round(moved, 3),
                shape_changed=bool(shape),
            )  # fmt: skip
            features.append(change)
            if geometry is not None and len(geo) < bounds.current().highlight_room(len(geo) + 1):
                properties = change.model_dump() | {"layer": spec.name}
                geo.append({"type": "Feature", "id": f"{spec.name}.{fid}", "geometry": geometry,
                            "properties": properties})  # fmt: skip
    totals = {state: sum(1 for f in features if f.state == state) for state in STATES}
    return DatasetDiff(
        dataset_id=dataset_id, from_version=from_v, to_version=to_v, summary=summary,
        totals=totals, features=features, geojson=feature_collection(geo, srid, output_crs),
    )  # fmt: skip

"""Read a vector layer (GeoJSON, GPKG, Shapefile via pyogrio; CSV with lon/lat) and a YAML mapping.

The shelter, population, hazard and road importers share this: a file becomes a ``VectorTable``
of storage-CRS shapely geometries plus a column accessor that applies the mapping (source field
name, constant value, value vocabulary), and a :class:`VectorImport` writes the rows its
``build`` makes of it into one table. Mapping files look like::

    name: Name                      # target: source field
    capacity: Capacity
    level: {value: short}           # a constant
    kind: {field: TYPE, values: {AE: flood, VE: flood}}   # a vocabulary
    where: {sfha_tf: [T]}           # keep only rows whose field is in the list
    attrs: [Address, Phone]         # extra fields kept in attrs (default: all unmapped ones)
    lon: long                       # CSV coordinate columns (default lon/long/longitude/x)
    lat: lat
    crs: EPSG:4326                  # source CRS when the file declares none
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
import yaml
from pyproj import CRS
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.crs import crs_label, parse_crs, to_storage
from cim.db.connect import storage_srid
from cim.db.copy import copy_rows
from cim.db.models import Dataset
from cim.errors import ImportFailed, InvalidInput
from cim.services.datasets import DatasetSource, file_sha256
from importers.base import ImportResult, WriteOutcome, run_import

VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".csv", ".fgb"}
LON_NAMES = ("lon", "long", "longitude", "lng", "x")
LAT_NAMES = ("lat", "latitude", "y")
RESERVED_KEYS = {"where", "attrs", "lon", "lat", "crs", "kind_of_file"}


def load_mapping(path: Path | None) -> dict[str, Any]:
    """The mapping in a YAML file (``{}`` without one); InvalidInput when it is not a mapping."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read mapping {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"mapping {path} must be a YAML mapping of target: source")
    return data


@dataclass
class VectorTable:
    """Rows of a vector file: geometries (storage CRS), properties, and the mapping to apply."""

    geoms: npt.NDArray[np.object_]
    properties: list[dict[str, Any]]
    mapping: dict[str, Any]
    source_crs: str
    fields: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.properties)

    def has(self, target: str, candidates: tuple[str, ...] = ()) -> bool:
        """Whether ``target`` is mapped, or one of ``candidates`` is a field of the file."""
        return target in self.mapping or self._auto_field(target, candidates) is not None

    def _auto_field(self, target: str, candidates: tuple[str, ...]) -> str | None:
        lowered = {name.lower(): name for name in self.fields}
        for name in (target, *candidates):
            if name.lower() in lowered:
                return lowered[name.lower()]
        return None

    def used_fields(self, targets: dict[str, tuple[str, ...]]) -> set[str]:
        """Source fields consumed by the mapped targets (kept out of ``attrs``)."""
        used: set[str] = set()
        for target, candidates in targets.items():
            spec = self.mapping.get(target)
            if isinstance(spec, str):
                used.add(spec)
            elif isinstance(spec, dict):
                if "field" in spec:
                    used.add(str(spec["field"]))
                used.update(str(name) for name in (spec.get("fields") or {}))
            elif spec is None:
                auto = self._auto_field(target, candidates)
                if auto:
                    used.add(auto)
        return used

    def column(self, target: str, candidates: tuple[str, ...] = ()) -> list[Any]:
        """Values of ``target`` for every row, after the mapping (None where missing)."""
        spec = self.mapping.get(target)
        if spec is None:
            auto = self._auto_field(target, candidates)
            return [None] * len(self) if auto is None else [p.get(auto) for p in self.properties]
        if isinstance(spec, str):
            self._require_field(spec, target)
            return [p.get(spec) for p in self.properties]
        if not isinstance(spec, dict):
            raise InvalidInput(f"mapping for {target!r} must be a field name or a table")
        if "value" in spec:
            return [spec["value"]] * len(self)
        source = spec.get("field")
        if source is None:
            raise InvalidInput(f"mapping for {target!r} needs field: or value:")
        self._require_field(str(source), target)
        vocabulary = {str(k): v for k, v in (spec.get("values") or {}).items()}
        default = spec.get("default")
        values: list[Any] = []
        for row in self.properties:
            raw = row.get(str(source))
            if is_missing(raw):
                values.append(default)
            elif vocabulary:
                values.append(vocabulary.get(str(raw), default if "default" in spec else raw))
            else:
                values.append(raw)
        return values

    def flags(self, target: str) -> list[list[str]]:
        """Per row, the names whose flag field is set (``{fields: {src: name}, true: [...]}``)."""
        spec = self.mapping.get(target)
        if not isinstance(spec, dict) or not isinstance(spec.get("fields"), dict):
            return [[] for _ in range(len(self))]
        truthy = {str(v) for v in spec.get("true", ["1", "true", "True", "yes", "YES", "Y"])}
        pairs = [(str(k), str(v)) for k, v in spec["fields"].items()]
        for source, _ in pairs:
            self._require_field(source, target)
        return [
            [name for source, name in pairs if str(row.get(source)) in truthy]
            for row in self.properties
        ]

    def attrs(self, used: set[str]) -> list[dict[str, Any]]:
        """Per row, the properties kept as ``attrs`` (``attrs:`` list, else all unused fields)."""
        keep = self.mapping.get("attrs")
        names = (
            [str(n) for n in keep]
            if isinstance(keep, list)
            else [n for n in self.fields if n not in used]
        )
        return [
            {n: json_safe(row.get(n)) for n in names if not is_missing(row.get(n))}
            for row in self.properties
        ]

    def _require_field(self, name: str, target: str) -> None:
        if name not in self.fields:
            raise InvalidInput(
                f"mapping for {target!r} names field {name!r}, which the file does not have; "
                f"fields: {', '.join(self.fields)}"
            )


def is_missing(value: Any) -> bool:
    """None, NaN or an empty string."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def json_safe(value: Any) -> Any:
    """Plain JSON types for numpy scalars and dates."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def to_float(value: Any, *, what: str, row: int) -> float | None:
    """A float, None when missing; InvalidInput naming the row when it is not a number."""
    if is_missing(value):
        return None
    try:
        number = float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"row {row + 1}: {what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"row {row + 1}: {what} {value!r} is not a finite number")
    return number


def to_floats(
    values: Sequence[Any], *, what: str, rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """:func:`to_float` of each value (NaN where missing), ``rows`` naming each value's row
    (from 0) in the messages: one array conversion when no value is a string - the usual
    numeric column, where a call per value cost ~1.5 s per million - else value by value."""
    numbers = numeric_array(values)
    if numbers is not None:
        infinite = np.flatnonzero(np.isinf(numbers))
        if infinite.size:
            i = int(infinite[0])
            raise InvalidInput(
                f"row {int(rows[i]) + 1}: {what} {values[i]!r} is not a finite number"
            )
        return numbers
    out = np.empty(len(values))  # a string or a value float() refuses: named by to_float
    for i, value in enumerate(values):
        number = to_float(value, what=what, row=int(rows[i]))
        out[i] = np.nan if number is None else number
    return out


def numeric_array(values: Sequence[Any]) -> npt.NDArray[np.float64] | None:
    """``values`` as one float array (None and NaN as NaN) when none is a string and NumPy
    converts them all as ``float()`` would; None otherwise (convert those one by one)."""
    if any(isinstance(value, str) for value in values):
        return None
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    return numbers if numbers.shape == (len(values),) else None


def read_vector(
    path: Path, *, storage_srid: int, mapping: dict[str, Any], crs: str | None = None
) -> VectorTable:
    """Read ``path`` into a VectorTable in the storage CRS (2D); ``crs`` overrides the file's."""
    path = _check_path(path)
    given = crs or mapping.get("crs")
    if path.suffix.lower() == ".csv":
        geoms, properties, fields, source = _read_csv(path, mapping, given)
    else:
        geoms, properties, fields, source = _read_ogr(path, given)
    return _table(path, geoms, properties, fields, source, mapping, storage_srid, offset=0)


def read_vector_chunks(
    path: Path,
    *,
    storage_srid: int,
    mapping: dict[str, Any],
    crs: str | None = None,
    rows: int = 50_000,
) -> Iterator[VectorTable]:
    """:func:`read_vector` ``rows`` features at a time (memory bounded by a chunk; a CSV file
    comes in one piece). An empty file gives one empty table."""
    path = _check_path(path)
    if path.suffix.lower() == ".csv":
        yield read_vector(path, storage_srid=storage_srid, mapping=mapping, crs=crs)
        return
    given = crs or mapping.get("crs")
    skip = kept = 0
    while True:
        geoms, properties, fields, source = _read_ogr(path, given, skip=skip, count=rows)
        if skip and not properties:
            return
        table = _table(path, geoms, properties, fields, source, mapping, storage_srid, kept)
        yield table
        kept += len(table)
        if len(properties) < rows:
            return
        skip += rows


def _check_path(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if path.suffix.lower() not in VECTOR_SUFFIXES:
        raise InvalidInput(
            f"{path.name}: unsupported format; use one of {', '.join(sorted(VECTOR_SUFFIXES))}"
        )
    return path


def _table(
    path: Path,
    geoms: npt.NDArray[np.object_],
    properties: list[dict[str, Any]],
    fields: list[str],
    source: CRS,
    mapping: dict[str, Any],
    storage_srid: int,
    offset: int,
) -> VectorTable:
    """Rows kept by ``where:``, checked for geometry and moved to the storage CRS; ``offset``
    rows were kept before these (feature numbers in messages count from the file's start)."""
    keep = _where(properties, mapping.get("where"), fields)
    geoms = geoms[keep]
    properties = [properties[i] for i in np.flatnonzero(keep)]
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        first = int(np.flatnonzero(missing)[0]) + offset
        raise InvalidInput(f"{path.name}: feature {first + 1} has no geometry")
    geoms = _transform(shapely.force_2d(geoms), source, storage_srid)
    return VectorTable(
        geoms=geoms,
        properties=properties,
        mapping=mapping,
        source_crs=crs_label(source),
        fields=fields,
    )


def _read_ogr(
    path: Path, given: str | None, skip: int = 0, count: int | None = None
) -> tuple[npt.NDArray[np.object_], list[dict[str, Any]], list[str], CRS]:
    import pyogrio

    try:
        frame = pyogrio.read_dataframe(path, skip_features=skip, max_features=count)
    except Exception as exc:  # pyogrio raises several DataSourceError/DataLayerError types
        raise ImportFailed(f"{path.name}: cannot read: {exc}") from None
    if given:
        source = parse_crs(given)
    elif frame.crs is not None:
        source = parse_crs(frame.crs.to_wkt())
    else:
        raise InvalidInput(f"{path.name} declares no CRS; give one with --crs")
    fields = [str(c) for c in frame.columns if c != "geometry"]
    records = _records(frame.drop(columns="geometry"))
    return np.asarray(frame.geometry.values, dtype=object), records, fields, source


def _read_csv(
    path: Path, mapping: dict[str, Any], given: str | None
) -> tuple[npt.NDArray[np.object_], list[dict[str, Any]], list[str], CRS]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises parser errors of several types
        raise ImportFailed(f"{path.name}: cannot read CSV: {exc}") from None
    fields = [str(c) for c in frame.columns]
    lon = _pick(fields, mapping.get("lon"), LON_NAMES, path.name, "longitude")
    lat = _pick(fields, mapping.get("lat"), LAT_NAMES, path.name, "latitude")
    xs = pd.to_numeric(frame[lon], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(frame[lat], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(xs) & np.isfinite(ys))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput(f"{path.name}: row {row + 1} has no numeric {lon}/{lat}")
    records = _records(frame.drop(columns=[lon, lat]))
    fields = [f for f in fields if f not in (lon, lat)]
    return shapely.points(xs, ys), records, fields, parse_crs(given or "EPSG:4326")


def _records(frame: Any) -> list[dict[str, Any]]:
    """The rows as dicts of Python values, what ``frame.to_dict(orient="records")`` gives, built
    column by column (pandas boxes each value on its own: 0.45 s per 100k rows of two fields)."""
    names = [str(c) for c in frame.columns]
    columns = [frame.iloc[:, j].tolist() for j in range(len(names))]
    if not columns:
        return [{} for _ in range(len(frame))]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _pick(fields: list[str], chosen: Any, names: tuple[str, ...], file: str, what: str) -> str:
    if chosen:
        if str(chosen) not in fields:
            raise InvalidInput(f"{file}: no column {chosen!r} for the {what}")
        return str(chosen)
    lowered = {f.lower(): f for f in fields}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise InvalidInput(
        f"{file}: no {what} column (looked for {', '.join(names)}); name it with "
        f"{'lon' if what == 'longitude' else 'lat'}: in --mapping"
    )


def _where(
    properties: list[dict[str, Any]], where: Any, fields: list[str]
) -> npt.NDArray[np.bool_]:
    keep = np.ones(len(properties), dtype=bool)
    if not where:
        return keep
    if not isinstance(where, dict):
        raise InvalidInput("mapping where: must map field names to lists of values")
    for name, allowed in where.items():
        if name not in fields:
            raise InvalidInput(f"mapping where: the file has no field {name!r}")
        values = {str(v) for v in (allowed if isinstance(allowed, list) else [allowed])}
        keep &= np.array([str(row.get(name)) in values for row in properties], dtype=bool)
    return keep


def _transform(
    geoms: npt.NDArray[np.object_], source: CRS, storage_srid: int
) -> npt.NDArray[np.object_]:
    if source.to_epsg() == storage_srid:
        return geoms

    def move(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y, _ = to_storage(source, storage_srid, coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, move), dtype=object)


TableRows = tuple[str, list[str], list[list[Any]], WriteOutcome]
"""The target table, its columns, the rows (without ``dataset_id``) and the import's outcome."""


@dataclass(frozen=True)
class VectorImport:
    """An importer of one vector file into one table: read, ``build`` the rows, COPY them.

    ``build(table, srid)`` validates the file into :data:`TableRows`; it runs before the
    transaction opens, so bad input writes nothing. ``options`` are stored on the dataset
    next to the mapping and CRS.
    """

    kind: str
    build: Callable[[VectorTable, int], TableRows]
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self,
        engine: Engine,
        path: Path,
        *,
        mapping: Path | None = None,
        crs: str | None = None,
        name: str | None = None,
        replace: bool = False,
    ) -> ImportResult:
        path = Path(path)
        srid = storage_srid(engine)
        table = read_vector(path, storage_srid=srid, mapping=load_mapping(mapping), crs=crs)
        if len(table) == 0:
            raise InvalidInput(f"{path.name}: no features to import")
        target, columns, rows, outcome = self.build(table, srid)
        outcome.source_crs = table.source_crs
        stored = {"mapping": str(mapping) if mapping else None, "crs": crs, **self.options}
        sha = file_sha256(path, *([Path(mapping)] if mapping else []))
        source = DatasetSource(
            kind=self.kind,
            name=name or path.stem,
            source_name=path.name,
            source_sha256=sha,
            options=stored,
        )

        def write(session: Session, dataset: Dataset) -> WriteOutcome:
            copy_rows(
                session,
                table=target,
                columns=["dataset_id", *columns],
                rows=([dataset.id, *row] for row in rows),
            )
            return outcome

        return run_import(engine, source=source, write=write, replace=replace)

"""Read CityJSON files (1.0, 1.1, 2.0) and CityJSONSeq streams as chunks of city objects.

Why chunks: a ``.city.json`` file is one JSON document (one chunk: every object and one vertex
list), while a CityJSONSeq file (``.city.jsonl``) is a header line followed by one
``CityJSONFeature`` per line, each with its own vertices. Reading a sequence line by line keeps
memory bounded by one feature, so both shapes are handed on as :class:`Chunk` s with the
``transform`` (scale/translate) already applied to the vertices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from cim.errors import InvalidInput

VERSIONS = ("1.0", "1.1", "2.0")
"""CityJSON versions read (major.minor; patch versions such as 1.0.3 are accepted)."""
SEQUENCE_SUFFIXES = (".jsonl", ".cityjsonl")
Vertices = npt.NDArray[np.float64]


@dataclass
class Header:
    """What a file says once for all its objects: version, CRS, transform and templates."""

    version: str
    reference_system: str | None
    scale: Vertices
    translate: Vertices
    templates: list[dict[str, Any]] = field(default_factory=list)
    template_vertices: Vertices = field(default_factory=lambda: np.zeros((0, 3)))

    def real_vertices(self, raw: Any, where: str) -> Vertices:
        """``vertices`` of the file -> real coordinates (``transform`` applied), shape (n, 3)."""
        try:
            array = np.asarray(raw if raw else np.zeros((0, 3)), dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(f"{where}: 'vertices' is not a list of [x, y, z]") from None
        if array.ndim != 2 or array.shape[1] != 3:
            raise InvalidInput(f"{where}: 'vertices' is not a list of [x, y, z]")
        return array * self.scale + self.translate


@dataclass
class Chunk:
    """City objects with the vertices their boundaries index (real coordinates)."""

    objects: dict[str, dict[str, Any]]
    vertices: Vertices


def read_citymodel(path: Path) -> tuple[Header, Iterator[Chunk]]:
    """The header of ``path`` and its chunks (one for CityJSON, one per line for CityJSONSeq)."""
    if path.name.endswith(SEQUENCE_SUFFIXES):
        return _read_sequence(path)
    document = _parse(path.read_bytes(), path.name)
    header = _header(document, path.name, expected="CityJSON")
    chunk = Chunk(
        objects=_objects(document, path.name),
        vertices=header.real_vertices(document.get("vertices"), path.name),
    )
    return header, iter([chunk])


def _read_sequence(path: Path) -> tuple[Header, Iterator[Chunk]]:
    handle = path.open("rb")
    first = handle.readline()
    if not first.strip():
        handle.close()
        raise InvalidInput(f"{path.name}: empty CityJSONSeq file (no header line)")
    header = _header(_parse(first, f"{path.name}: line 1"), f"{path.name}: line 1", "CityJSON")

    def features() -> Iterator[Chunk]:
        with handle:
            for number, line in enumerate(handle, start=2):
                if not line.strip():
                    continue
                where = f"{path.name}: line {number}"
                feature = _parse(line, where)
                if feature.get("type") != "CityJSONFeature":
                    raise InvalidInput(f"{where}: expected a CityJSONFeature")
                yield Chunk(
                    objects=_objects(feature, where),
                    vertices=header.real_vertices(feature.get("vertices"), where),
                )

    return header, features()


def _parse(data: bytes, where: str) -> dict[str, Any]:
    try:
        document = orjson.loads(data)  # several times faster than json on CityJSONSeq lines
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{where}: not a JSON object")
    return document


def _header(document: dict[str, Any], where: str, expected: str) -> Header:
    if document.get("type") != expected:
        raise InvalidInput(f"{where}: not a CityJSON file (type is {document.get('type')!r})")
    version = str(document.get("version", ""))
    if ".".join(version.split(".")[:2]) not in VERSIONS:
        raise InvalidInput(
            f"{where}: unknown CityJSON version {version!r}; one of {', '.join(VERSIONS)}"
        )
    transform = document.get("transform") or {}
    metadata = document.get("metadata") or {}
    # 1.0 calls it referenceSystem too (an URN); 0.x used "crs": {"epsg": n}.
    reference = metadata.get("referenceSystem")
    templates = document.get("geometry-templates") or {}
    header = Header(
        version=version,
        reference_system=str(reference) if reference else None,
        scale=np.asarray(transform.get("scale", [1.0, 1.0, 1.0]), dtype=np.float64),
        translate=np.asarray(transform.get("translate", [0.0, 0.0, 0.0]), dtype=np.float64),
        templates=list(templates.get("templates") or []),
    )
    raw = templates.get("vertices-templates")
    if raw:
        header.template_vertices = np.asarray(raw, dtype=np.float64).reshape(-1, 3)
    return header


def _objects(document: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    objects = document.get("CityObjects")
    if not isinstance(objects, dict):
        raise InvalidInput(f"{where}: no 'CityObjects'")
    return objects


EPSG_IN_TEXT = re.compile(r"EPSG(?:/\d+/|::|:)(\d+)\s*$", re.IGNORECASE)


def epsg_of(reference_system: str) -> str:
    """``EPSG:n`` from an OGC URL or URN (``…/EPSG/0/7415``, ``urn:ogc:def:crs:EPSG::7415``).

    Examples
    --------
    >>> epsg_of("https://www.opengis.net/def/crs/EPSG/0/7415")
    'EPSG:7415'
    >>> epsg_of("urn:ogc:def:crs:EPSG::2056")
    'EPSG:2056'
    """
    match = EPSG_IN_TEXT.search(reference_system.strip())
    return f"EPSG:{match.group(1)}" if match else reference_system

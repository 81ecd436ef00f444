"""Typed answers of the services: the ``Result`` base and the GeoJSON shapes they carry.

Services return typed results, not ``dict[str, Any]``: routers serialise them (FastAPI derives the
OpenAPI response schema from them), the CLI formats their attributes. Each domain subpackage keeps
its own results in ``models.py``; what they share lives here.

GeoJSON members stay plain dicts typed with ``TypedDict``: an answer may hold thousands of
features, and a dict per feature costs nothing to build or serialise, while pydantic still
documents and checks the shape.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, with_config
from typing_extensions import TypedDict

#: A GeoJSON geometry object (``type`` + ``coordinates``, or a GeometryCollection).
Geometry = dict[str, Any]


class Result(BaseModel):
    """Base of every service answer: immutable, serialisable with ``model_dump(mode="json")``."""

    model_config = ConfigDict(frozen=True)


class NamedCrs(TypedDict):
    """The GeoJSON 2008 ``crs`` member naming the coordinates' CRS (``urn:ogc:def:crs:EPSG::N``)."""

    type: Literal["name"]
    properties: dict[str, str]


@with_config(ConfigDict(extra="allow"))
class Feature(TypedDict):
    """A GeoJSON Feature; ``id`` is ``layer.id`` in cim's answers. Other members pass through."""

    type: Literal["Feature"]
    id: NotRequired[str | int]
    geometry: Geometry | None
    properties: dict[str, Any]


@with_config(ConfigDict(extra="allow"))
class FeatureCollection(TypedDict):
    """A GeoJSON FeatureCollection, with OGC API's counts where the answer is a page (or a
    highlight cut at its cap, ``truncated``); other members (``links``...) pass through."""

    type: Literal["FeatureCollection"]
    features: list[Feature]
    crs: NotRequired[NamedCrs]
    numberMatched: NotRequired[int]
    numberReturned: NotRequired[int]
    truncated: NotRequired[bool]


def named_crs(code: int | str) -> NamedCrs:
    """The ``crs`` member for EPSG ``code``."""
    return {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{code}"}}

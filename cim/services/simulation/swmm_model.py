"""A SWMM 5 ``.inp`` of one stored drainage network: what the flood simulation runs.

The SWMM importer (``importers/pipes/swmm.py``) stores junctions, storage units and outfalls as
``pipe_node`` rows (invert as ``bottom_z``, ground = invert + max depth), conduits and the other
links as ``pipe_segment`` rows (end inverts, section, ``attrs`` length and roughness), every
row of a section keyed by an element's name in ``attrs["swmm"]`` (tokens after the name, the
file's units), and the other sections ([OPTIONS], [RAINGAGES], [TIMESERIES], [SUBCATCHMENTS],
[SUBAREAS], [INFILTRATION], [Polygons], [CURVES], [REPORT]...) as lines in
``dataset.options["source_model"]["sections"]``. This module writes the sections back, in the
file's own units (feet for CFS/GPM/MGD), with what the rows hold taking precedence over the kept
tokens: invert = ``bottom_z``, max depth = ``ground_z - bottom_z``, conduit offsets = end invert
- node invert (or the end invert itself under ``LINK_OFFSETS ELEVATION``), length, roughness,
circular diameter or rectangular height x width. Coordinates go back to the import's source CRS
and drawing origin. Nodes SWMM does not know here (dividers) are not kept by the importer, so a
model with dividers cannot be rebuilt.

A network without subcatchments gets a documented default: one subcatchment per junction or
storage node, its area the node's Thiessen cell clipped to a corridor of ``DEFAULT_CORRIDOR_M``
either side of the pipes (the land a street inlet plausibly drains): see
:func:`cim.services.simulation.swmm_catchments.default_subcatchments`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.models import Dataset
from cim.errors import InvalidInput, NotFound
from cim.services.pipes.scope import session_srid
from cim.services.simulation.epanet_model import _to_source

FOOT = 0.3048
US_FLOW_UNITS = frozenset({"CFS", "GPM", "MGD"})
NODE_SECTIONS = {"junction": "JUNCTIONS", "storage": "STORAGE", "outfall": "OUTFALLS"}
LINK_SECTIONS = {
    "conduit": "CONDUITS",
    "pump": "PUMPS",
    "orifice": "ORIFICES",
    "weir": "WEIRS",
    "outlet": "OUTLETS",
}
#: Sections written from the rows, in this order; kept model sections come first.
EXTRA_ELEMENT_SECTIONS = ("XSECTIONS", "LOSSES", "INFLOWS", "DWF", "RDII", "TREATMENT")
#: The order SWMM's own editor writes sections in. It matters: SWMM reads a section's lines
#: with what the sections before it set (Example 1's infiltration changes when [INFILTRATION]
#: comes first), and jsonb does not keep the order of the stored sections.
# fmt: off
SECTION_ORDER = (
    "TITLE", "OPTIONS", "FILES", "EVAPORATION", "TEMPERATURE", "ADJUSTMENTS", "RAINGAGES",
    "SUBCATCHMENTS", "SUBAREAS", "INFILTRATION", "LID_CONTROLS", "LID_USAGE", "AQUIFERS",
    "GROUNDWATER", "GWF", "SNOWPACKS", "JUNCTIONS", "OUTFALLS", "DIVIDERS", "STORAGE", "CONDUITS",
    "PUMPS", "ORIFICES", "WEIRS", "OUTLETS", "XSECTIONS", "TRANSECTS", "STREETS", "INLETS",
    "INLET_USAGE", "LOSSES", "CONTROLS", "POLLUTANTS", "LANDUSES", "COVERAGES", "LOADINGS",
    "BUILDUP", "WASHOFF", "TREATMENT", "INFLOWS", "DWF", "RDII", "HYDROGRAPHS", "CURVES",
    "TIMESERIES", "PATTERNS", "REPORT", "TAGS", "MAP", "COORDINATES", "VERTICES", "POLYGONS",
    "SYMBOLS", "LABELS", "BACKDROP",
)
# fmt: on


@dataclass
class SwmmModel:
    """The sections of one stored SWMM network and how its names map onto cim's rows."""

    dataset_id: int
    name: str
    sections: dict[str, list[str]]
    node_id: dict[str, int]  # SWMM node name -> pipe_node id
    node_kind: dict[str, str]
    link_id: dict[str, int]  # SWMM link name -> pipe_segment id
    us_units: bool
    defaults: list[str] = field(default_factory=list)

    @property
    def length_scale(self) -> float:
        """Metres per file length unit."""
        return FOOT if self.us_units else 1.0

    def option(self, key: str) -> str | None:
        """An [OPTIONS] value (upper case), None when the file does not set it."""
        for line in self.sections.get("OPTIONS", []):
            parts = line.split()
            if len(parts) > 1 and parts[0].upper() == key:
                return parts[1].upper()
        return None

    def set_option(self, key: str, value: str) -> None:
        lines = [ln for ln in self.sections.get("OPTIONS", []) if ln.split()[0].upper() != key]
        self.sections["OPTIONS"] = [*lines, f"{key} {value}"]

    def text(self) -> str:
        """The ``.inp`` file's text."""
        out = []
        rank = {name: i for i, name in enumerate(SECTION_ORDER)}
        ordered = sorted(self.sections.items(), key=lambda item: rank.get(item[0], len(rank)))
        for name, lines in ordered:
            if not lines:
                continue
            out.append(f"[{name}]")
            out.extend(lines)
            out.append("")
        return "\n".join(out)


def load_swmm_model(
    session: Session, dataset_id: int, *, default_catchments: bool = True
) -> SwmmModel:
    """The SWMM model of drainage dataset ``dataset_id`` (refused for any other network); with
    ``default_catchments=False``, a network stored without subcatchments stays without."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.status != "ready":
        raise NotFound(f"dataset {dataset_id} does not exist or is not ready")
    options = dataset.options or {}
    stored = options.get("source_model") or {}
    if dataset.kind != "pipes" or options.get("format") != "swmm":
        raise InvalidInput(
            f"dataset {dataset_id} is not a SWMM drainage network (kind {dataset.kind}, format "
            f"{options.get('format')}); flood simulation needs one imported from a SWMM .inp"
        )
    if "sections" not in stored:
        raise InvalidInput(
            f"dataset {dataset_id} was imported before SWMM options were kept; import it again "
            "(cim import pipes FILE.inp --replace) to simulate it"
        )
    sections = {k: list(v) for k, v in stored["sections"].items() if k not in _WRITTEN}
    flow_units = next(
        (ln.split()[1].upper() for ln in sections.get("OPTIONS", []) if
         ln.split()[0].upper() == "FLOW_UNITS" and len(ln.split()) > 1), "CFS"
    )  # fmt: skip
    origin = options.get("origin") or [0.0, 0.0, 0.0]
    model = SwmmModel(
        dataset_id=dataset_id,
        name=str(stored.get("name", dataset.name)),
        sections=sections,
        node_id={},
        node_kind={},
        link_id={},
        us_units=flow_units in US_FLOW_UNITS,
    )
    writer = _Writer(model, float(origin[2]) if len(origin) > 2 else 0.0, _offsets(sections))
    writer.nodes(session, dataset, session_srid(session))
    writer.links(session, dataset, session_srid(session))
    if default_catchments and not sections.get("SUBCATCHMENTS"):
        from cim.services.simulation.swmm_catchments import default_subcatchments

        default_subcatchments(session, model)
    return model


_WRITTEN = frozenset(
    {*NODE_SECTIONS.values(), *LINK_SECTIONS.values(), *EXTRA_ELEMENT_SECTIONS}
    | {"COORDINATES", "VERTICES"}
)


def _offsets(sections: dict[str, list[str]]) -> bool:
    """True when link offsets are elevations (``LINK_OFFSETS ELEVATION``), not depths."""
    for line in sections.get("OPTIONS", []):
        parts = line.split()
        if len(parts) > 1 and parts[0].upper() == "LINK_OFFSETS":
            return parts[1].upper() == "ELEVATION"
    return False


def number(value: float) -> str:
    """A length for the file: enough digits to give back what was read."""
    return f"{value:.10g}"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


class _Writer:
    """Writes the node and link sections from the rows into a :class:`SwmmModel`."""

    def __init__(self, model: SwmmModel, height: float, offsets_are_elevations: bool) -> None:
        self.model = model
        self.height = height
        self.elevations = offsets_are_elevations
        self.invert: dict[int, float] = {}
        self.name_of: dict[int, str] = {}
        for section in (*NODE_SECTIONS.values(), *LINK_SECTIONS.values(),
                        *EXTRA_ELEMENT_SECTIONS, "COORDINATES", "VERTICES"):  # fmt: skip
            model.sections.setdefault(section, [])

    def _length(self, metres: float) -> str:
        return number(metres / self.model.length_scale)

    def _extras(self, name: str, kept: dict[str, list[list[str]]]) -> None:
        for section in ("LOSSES", "INFLOWS", "DWF", "RDII", "TREATMENT"):
            for row in kept.get(section, []):
                self.model.sections[section].append(" ".join([name, *row]))

    def nodes(self, session: Session, dataset: Dataset, srid: int) -> None:
        rows = session.execute(
            text(
                "SELECT id, code, kind, ground_z, bottom_z, attrs, ST_X(geom) AS x,"
                " ST_Y(geom) AS y FROM pipe_node WHERE dataset_id = :d ORDER BY id"
            ),
            {"d": dataset.id},
        ).all()
        back = _to_source(dataset, srid)
        xs, ys = back(np.array([r.x for r in rows]), np.array([r.y for r in rows]))
        for row, x, y in zip(rows, xs, ys, strict=True):
            kind = str((row.attrs or {}).get("swmm_type", row.kind))
            section = NODE_SECTIONS.get(kind)
            if section is None:
                continue
            kept = (row.attrs or {}).get("swmm") or {}
            tokens = list((kept.get(section) or [[]])[0])
            bottom = _finite(row.bottom_z)
            if bottom is None:
                raise InvalidInput(f"dataset {dataset.id}: node {row.code} has no invert")
            invert = bottom - self.height
            tokens[:1] = [self._length(invert)]
            if kind != "outfall":
                ground = _finite(row.ground_z)
                depth = self._length(ground - bottom) if ground is not None else "0"
                tokens[1:2] = [depth]
                tokens += ["0"] * (5 - len(tokens)) if kind == "junction" else []
            else:
                tokens += ["FREE"] if len(tokens) < 2 else []
            self.model.sections[section].append(" ".join([row.code, *tokens]))
            self.model.sections["COORDINATES"].append(f"{row.code} {x:.6f} {y:.6f}")
            self._extras(row.code, kept)
            self.invert[row.id] = bottom
            self.name_of[row.id] = row.code
            self.model.node_id[row.code] = row.id
            self.model.node_kind[row.code] = kind

    def links(self, session: Session, dataset: Dataset, srid: int) -> None:
        rows = session.execute(
            text(
                "SELECT id, code, link_type, start_node_id, end_node_id, start_invert_z,"
                " end_invert_z, section_shape, diameter_mm, width_mm, height_mm, length_m,"
                " attrs, ST_AsBinary(ST_Force2D(geom)) AS wkb"
                " FROM pipe_segment WHERE dataset_id = :d ORDER BY id"
            ),
            {"d": dataset.id},
        ).all()
        back = _to_source(dataset, srid)
        for row in rows:
            attrs = row.attrs or {}
            section = LINK_SECTIONS.get(str(attrs.get("swmm_type", row.link_type)))
            if section is None:
                continue
            ends = (self.name_of.get(row.start_node_id), self.name_of.get(row.end_node_id))
            if None in ends:
                raise InvalidInput(f"dataset {dataset.id}: link {row.code} has an unknown end")
            kept = attrs.get("swmm") or {}
            tokens = list((kept.get(section) or [[]])[0])
            if section == "CONDUITS":
                tokens = self._conduit(row, tokens)
            else:
                tokens[:2] = [str(e) for e in ends]
            self.model.sections[section].append(" ".join([row.code, *tokens]))
            self._xsection(row, kept)
            self._extras(row.code, kept)
            self.model.link_id[row.code] = row.id
            inner = shapely.get_coordinates(shapely.from_wkb(bytes(row.wkb)))[1:-1]
            if len(inner):
                vx, vy = back(inner[:, 0], inner[:, 1])
                self.model.sections["VERTICES"] += [
                    f"{row.code} {a:.6f} {b:.6f}" for a, b in zip(vx, vy, strict=True)
                ]

    def _conduit(self, row: Any, tokens: list[str]) -> list[str]:
        attrs = row.attrs or {}
        tokens += ["0"] * (8 - len(tokens))
        length = _finite(attrs.get("length_m")) or _finite(row.length_m)
        if length is None:
            raise InvalidInput(f"conduit {row.code} has no length")
        roughness = _finite(attrs.get("roughness"))
        if roughness is None:
            roughness = 0.013
            self.model.defaults.append(f"conduit {row.code}: Manning n 0.013 (concrete)")
        offsets = []
        for node, end in (
            (row.start_node_id, row.start_invert_z),
            (row.end_node_id, row.end_invert_z),
        ):
            z = _finite(end)
            if z is None:
                offsets.append("0" if not self.elevations else "*")
            elif self.elevations:
                offsets.append(self._length(z - self.height))
            else:
                offsets.append(self._length(max(z - self.invert[node], 0.0)))
        tokens[:6] = [
            self.name_of[row.start_node_id],
            self.name_of[row.end_node_id],
            self._length(length),
            number(roughness),
            *offsets,
        ]
        return tokens

    def _xsection(self, row: Any, kept: dict[str, list[list[str]]]) -> None:
        tokens = list((kept.get("XSECTIONS") or [[]])[0])
        shape = row.section_shape
        if not tokens:
            if shape != "circular" or _finite(row.diameter_mm) is None:
                return
            tokens = ["CIRCULAR", "0", "0", "0", "0", "1"]
        tokens += ["0"] * (5 - len(tokens))
        mm = 1000.0 * self.model.length_scale
        diameter, width, height = (_finite(row.diameter_mm), _finite(row.width_mm),
                                   _finite(row.height_mm))  # fmt: skip
        if shape == "circular" and diameter is not None:
            tokens[1] = number(diameter / mm)
        elif shape == "rectangular" and height is not None and width is not None:
            tokens[1:3] = [number(height / mm), number(width / mm)]
        self.model.sections["XSECTIONS"].append(" ".join([row.code, *tokens]))

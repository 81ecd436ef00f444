"""Write a stored SWMM drainage network back to a SWMM 5 ``.inp`` (``cim export pipes``).

The model is the one the flood simulation runs
(:func:`cim.services.simulation.swmm_model.load_swmm_model`): junctions, outfalls and storage
units with their inverts and max depths, conduits with their ends, length, roughness, offsets
and cross-section (Geom1..4, barrels), the other links, coordinates and vertices in the import's
source CRS and drawing origin, and the sections the importer kept as they were read
([OPTIONS], [RAINGAGES], [TIMESERIES], [SUBCATCHMENTS], [SUBAREAS], [INFILTRATION], [Polygons],
[CURVES], [REPORT]...), all in the source file's units and in the order SWMM's editor writes
them.

Defaults, each listed in the answer's ``defaults`` when used:

- no [TITLE]: one line naming the dataset;
- no ``FLOW_UNITS`` option: ``FLOW_UNITS CFS``, SWMM's own default, which is also how the import
  read the file (lengths in feet). Other options the source did not set are not written, so SWMM
  applies its own defaults (KINWAVE routing, HORTON infiltration, 01/01/2004 start...), as it
  did for the source;
- no ``START_DATE``, ``END_DATE`` nor ``END_TIME`` (a pipes-only file): ``END_DATE 01/02/2004``,
  a one-day run from SWMM's default start; SWMM refuses a file whose end is not after its start;
- a conduit without a roughness: Manning n 0.013 (concrete), as the flood simulation uses;
- no [SUBCATCHMENTS]: none are written (a pipes-only model), unless ``default_subcatchments``
  asks for the stand-ins the flood simulation rains on
  (:func:`cim.services.simulation.swmm_catchments.default_subcatchments`).

The files a model reads (a rain gage's, a time series' or [TEMPERATURE]'s ``FILE``, [FILES]) are
not kept by the import: they are named in ``external_files`` and must be put where the ``.inp``
says (relative paths: beside it) again.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.simulation.export import network_format, replaced_atomically
from cim.services.simulation.models import SwmmExport
from cim.services.simulation.swmm_model import SwmmModel, load_swmm_model

DEFAULT_FLOW_UNITS = "CFS"
"""SWMM 5's flow units when [OPTIONS] names none (lengths in feet)."""
DEFAULT_END_DATE = "01/02/2004"
"""The end of the run of a model that sets no period: a day after SWMM's default start."""
_TOKEN = re.compile(r'"[^"]*"|\S+')


def export_swmm(
    session: Session, dataset_id: int, path: Path, *, default_subcatchments: bool = False
) -> SwmmExport:
    """Write drainage dataset ``dataset_id`` as a SWMM 5 ``.inp`` at ``path``.

    Refused (:class:`~cim.errors.InvalidInput`) for a network not imported from a SWMM file;
    nothing is written then, nor when writing fails.
    """
    found = network_format(session, dataset_id)
    if found != "swmm":
        hint = "; export it with --format epanet" if found == "epanet" else ""
        raise InvalidInput(
            f"dataset {dataset_id} is not a SWMM drainage network (format {found}): a SWMM "
            f"export needs a network imported from a SWMM .inp{hint}"
        )
    model = load_swmm_model(session, dataset_id, default_catchments=default_subcatchments)
    _fill_defaults(model)
    content = model.text()
    with replaced_atomically(path) as partial:
        partial.write_text(content, encoding="utf-8")
    return summary(model, path)


def _fill_defaults(model: SwmmModel) -> None:
    """The title and flow units a file without them gets (see the module docstring)."""
    if not model.sections.get("TITLE"):
        model.sections["TITLE"] = [f"{model.name} (cim dataset {model.dataset_id})"]
        model.defaults.append(f"title: none stored; {model.sections['TITLE'][0]!r}")
    if model.option("FLOW_UNITS") is None:
        model.set_option("FLOW_UNITS", DEFAULT_FLOW_UNITS)
        model.defaults.append(f"FLOW_UNITS: none stored; {DEFAULT_FLOW_UNITS} (SWMM's default)")
    if all(model.option(key) is None for key in ("START_DATE", "END_DATE", "END_TIME")):
        model.set_option("END_DATE", DEFAULT_END_DATE)
        model.defaults.append(
            f"run period: none stored; END_DATE {DEFAULT_END_DATE}, one day after SWMM's default "
            "start (01/01/2004 00:00), which SWMM would otherwise refuse as no period at all"
        )


def external_files(sections: dict[str, list[str]]) -> list[str]:
    """The outside files a model's sections name (rain, time series, climate, [FILES]), as
    written."""
    found: list[str] = []
    places = (("RAINGAGES", 4, 5), ("TIMESERIES", 1, 2), ("TEMPERATURE", 0, 1))
    for section, source_at, file_at in places:
        for line in sections.get(section, []):
            tokens = _TOKEN.findall(line)
            if len(tokens) > file_at and tokens[source_at].upper() == "FILE":
                found.append(tokens[file_at].strip('"'))
    for line in sections.get("FILES", []):
        tokens = _TOKEN.findall(line)
        if len(tokens) > 2:
            found.append(tokens[2].strip('"'))
    return list(dict.fromkeys(found))


def summary(model: SwmmModel, path: Path) -> SwmmExport:
    """The counts of what ``model`` holds, as written at ``path``."""

    def count(section: str) -> int:
        return len(model.sections.get(section, []))

    nodes = ("JUNCTIONS", "OUTFALLS", "STORAGE")
    links = ("CONDUITS", "PUMPS", "ORIFICES", "WEIRS", "OUTLETS")
    return SwmmExport(
        dataset_id=model.dataset_id,
        format="swmm",
        path=str(path),
        flow_units=model.option("FLOW_UNITS") or DEFAULT_FLOW_UNITS,
        nodes=sum(count(s) for s in nodes),
        links=sum(count(s) for s in links),
        junctions=count("JUNCTIONS"),
        outfalls=count("OUTFALLS"),
        storages=count("STORAGE"),
        conduits=count("CONDUITS"),
        pumps=count("PUMPS"),
        orifices=count("ORIFICES"),
        weirs=count("WEIRS"),
        outlets=count("OUTLETS"),
        subcatchments=count("SUBCATCHMENTS"),
        raingages=count("RAINGAGES"),
        defaults=list(model.defaults),
        external_files=external_files(model.sections),
    )

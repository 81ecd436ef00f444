"""Write a stored EPANET network back to an ``.inp`` file through WNTR (``cim export pipes``).

The model is the one simulations run (:func:`cim.services.simulation.epanet_model.load_model`):
original node and link names, the EPANET valves and the pipes cut by a ``--valves`` layer put
back together, coordinates in the import's source CRS, and the file's own units (``GPM``...)
unless others are asked for. ``wntr.network.write_inpfile`` writes the text, so the file is what
EPANET 2.2 and WNTR read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.simulation.epanet_model import load_model
from cim.services.simulation.models import NetworkExport

EPANET_UNITS = ("CFS", "GPM", "MGD", "IMGD", "AFD", "LPS", "LPM", "MLD", "CMH", "CMD")
"""The flow units an EPANET file may use (the unit system follows: US for the first five)."""


def export_epanet(
    session: Session, dataset_id: int, path: Path, *, units: str | None = None
) -> NetworkExport:
    """Write dataset ``dataset_id`` as an EPANET ``.inp`` at ``path``; units default to the
    source file's."""
    import wntr

    if units is not None and units.upper() not in EPANET_UNITS:
        raise InvalidInput(f"unknown EPANET flow units {units!r}; one of {', '.join(EPANET_UNITS)}")
    stored = load_model(session, dataset_id)
    chosen = (units or stored.source_units or "LPS").upper()
    if not path.parent.is_dir():
        raise InvalidInput(f"{path.parent}: no such folder")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wntr.network.write_inpfile(stored.wn, str(path), units=chosen)
    wn = stored.wn
    return NetworkExport(
        dataset_id=dataset_id,
        format="epanet",
        path=str(path),
        units=chosen,
        nodes=wn.num_nodes,
        links=wn.num_links,
        junctions=wn.num_junctions,
        tanks=wn.num_tanks,
        reservoirs=wn.num_reservoirs,
        pipes=wn.num_pipes,
        pumps=wn.num_pumps,
        valves=wn.num_valves,
        defaults=stored.defaults,
    )

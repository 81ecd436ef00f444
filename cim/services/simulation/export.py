"""Write a stored EPANET network back to an ``.inp`` file through WNTR (``cim export pipes``).

The model is the one simulations run (:func:`cim.services.simulation.epanet_model.load_model`):
original node and link names, the EPANET valves and the pipes cut by a ``--valves`` layer put
back together, coordinates in the import's source CRS, and the file's own units (``GPM``...)
unless others are asked for. ``wntr.network.write_inpfile`` writes the text, so the file is what
EPANET 2.2 and WNTR read. Every export (this one and :mod:`cim.services.simulation.export_swmm`)
writes a temporary file beside the target and renames it: an error leaves no half-written file
and an existing file untouched.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from cim.db.models import Dataset
from cim.errors import InvalidInput, NotFound
from cim.services.simulation.epanet_model import load_model
from cim.services.simulation.models import NetworkExport

EPANET_UNITS = ("CFS", "GPM", "MGD", "IMGD", "AFD", "LPS", "LPM", "MLD", "CMH", "CMD")
"""The flow units an EPANET file may use (the unit system follows: US for the first five)."""
NEW_FILE_MODE = 0o644


def network_format(session: Session, dataset_id: int) -> str | None:
    """The source format (``epanet``, ``swmm``...) of ready pipe dataset ``dataset_id``."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.status != "ready":
        raise NotFound(f"dataset {dataset_id} does not exist or is not ready")
    found = (dataset.options or {}).get("format") if dataset.kind == "pipes" else None
    return str(found) if found is not None else None


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed onto ``path`` when the block ends
    without error, removed otherwise (a file already at ``path`` keeps its permissions)."""
    if not path.parent.is_dir():
        raise InvalidInput(f"{path.parent}: no such folder")
    if path.is_dir():
        raise InvalidInput(f"{path}: is a folder, not a file")
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, path.stat().st_mode & 0o7777 if path.exists() else NEW_FILE_MODE)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def export_epanet(
    session: Session, dataset_id: int, path: Path, *, units: str | None = None
) -> NetworkExport:
    """Write dataset ``dataset_id`` as an EPANET ``.inp`` at ``path``; units default to the
    source file's."""
    import wntr

    if units is not None and units.upper() not in EPANET_UNITS:
        raise InvalidInput(f"unknown EPANET flow units {units!r}; one of {', '.join(EPANET_UNITS)}")
    if network_format(session, dataset_id) == "swmm":
        raise InvalidInput(
            f"dataset {dataset_id} is not an EPANET water network (it was imported from a SWMM "
            ".inp); export it with --format swmm"
        )
    stored = load_model(session, dataset_id)
    chosen = (units or stored.source_units or "LPS").upper()
    with replaced_atomically(path) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wntr.network.write_inpfile(stored.wn, str(partial), units=chosen)
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

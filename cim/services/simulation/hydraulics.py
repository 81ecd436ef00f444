"""Pressure-driven runs of a WNTR model: options, closures, the two engines, demand volumes.

Two engines read the same ``WaterNetworkModel``: EPANET 2.2 (``wntr.sim.EpanetSimulator``, the
compiled toolkit, demand model ``PDA``) and WNTR's own ``WNTRSimulator`` (Python/C++ Newton
solver, ``PDD``). Both use the same pressure-demand relation (WNTR ``hydraulics.rst``: no demand
at or below the minimum pressure, all of it at or above the required pressure,
``((p - Pmin) / (Preq - Pmin)) ** e`` between). EPANET is the default: ky4's 24 h run takes
0.2 s there and about 10 s in WNTRSimulator on this machine (``bench/simulation.py``).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cim.errors import InvalidInput

Engine = Literal["epanet", "wntr"]


@dataclass(frozen=True)
class PressureDemand:
    """The pressure-driven demand parameters of a run (metres of water)."""

    minimum_pressure_m: float
    required_pressure_m: float
    pressure_exponent: float


@dataclass(frozen=True)
class Run:
    """What one run answers at each reported time (rows: seconds from the start)."""

    pressure: pd.DataFrame  # junction pressures (m)
    demand: pd.DataFrame  # demand delivered at the junctions (m³/s)


def prepare(wn: Any, *, duration_h: float, pdd: PressureDemand) -> None:
    """Pressure-driven demand, the period, reports at every hydraulic step, no water quality."""
    hydraulic = wn.options.hydraulic
    hydraulic.demand_model = "PDD"
    hydraulic.minimum_pressure = pdd.minimum_pressure_m
    hydraulic.required_pressure = pdd.required_pressure_m
    hydraulic.pressure_exponent = pdd.pressure_exponent
    time = wn.options.time
    time.duration = round(duration_h * 3600)
    time.report_timestep = time.hydraulic_timestep
    time.report_start = 0
    wn.options.quality.parameter = "NONE"


def close_links(wn: Any, names: list[str]) -> list[str]:
    """Close ``names`` for the whole run; controls that would operate them are removed (a
    shutdown overrides the pump schedule). Returns the names of the removed controls."""
    from wntr.network import LinkStatus

    closing = set(names)
    for name in names:
        wn.get_link(name).initial_status = LinkStatus.Closed
    removed = [
        control_name
        for control_name, control in wn.controls()
        if any(getattr(obj, "name", None) in closing for obj in _links_of(control))
    ]
    for control_name in removed:
        wn.remove_control(control_name)
    return removed


def _links_of(control: Any) -> list[Any]:
    from wntr.network.base import Link

    return [obj for obj in control.requires() if isinstance(obj, Link)]


def simulate(wn: Any, engine: Engine) -> Run:
    """One extended-period run; a run that does not converge is an :class:`InvalidInput`."""
    import wntr
    from wntr.epanet.exceptions import EpanetException

    try:
        with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="cim-sim-") as tmp:
            warnings.simplefilter("ignore")
            if engine == "epanet":
                prefix = str(Path(tmp) / "run")
                results = wntr.sim.EpanetSimulator(wn).run_sim(
                    file_prefix=prefix, convergence_error=True
                )
            else:
                results = wntr.sim.WNTRSimulator(wn).run_sim(convergence_error=True)
    except (EpanetException, RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
        message = " ".join(str(exc).replace("(%s), ", "").split())[:300]
        raise InvalidInput(f"the hydraulic simulation did not converge: {message}") from None
    junctions = wn.junction_name_list
    return Run(
        pressure=results.node["pressure"][junctions],
        demand=results.node["demand"][junctions],
    )


def volume_m3(rates: pd.DataFrame) -> pd.Series:
    """Volume per column (m³) of flow rates (m³/s) reported at the index times (s): each rate
    holds until the next reported time (EPANET's step-wise hydraulics)."""
    times = rates.index.to_numpy(dtype=np.float64)
    if len(times) < 2:
        return pd.Series(0.0, index=rates.columns)
    widths = np.diff(times)
    values = rates.to_numpy(dtype=np.float64)[:-1]
    return pd.Series((values * widths[:, None]).sum(axis=0), index=rates.columns)


def expected_demand(wn: Any, index: pd.Index) -> pd.DataFrame:
    """Demand asked for at the junctions (m³/s) at ``index`` times: base x pattern x multiplier."""
    import wntr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = wntr.metrics.expected_demand(wn)
    frame = expected[wn.junction_name_list]
    return frame.reindex(index, method="ffill").fillna(0.0)

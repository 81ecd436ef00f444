"""Suggested methane-sensor sites: the ``k`` spaces that cover the most risky gas-pipe length.

A maximal covering location problem (MCLP), solved by the shelters' exact solver
(:func:`cim.services.shelters.solver.solve_mclp`; exact by enumeration or HiGHS, greedy +
swap with an LP bound only for very large cases). The demand: every gas pipe in scope cut
into equal pieces of at most ``piece_m`` metres (horizontal length), each weighted by
``length x F_pressure x F_condition`` - the pipe factors of the risk score
(:mod:`cim.services.gas.risk`), so an old high-pressure metre weighs more than a new
low-pressure one. A space covers a piece when it lies within the search radius of it (the same
radius that made it an adjacent space): a sensor there would smell gas leaking from that piece.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.ops import substring

from cim.bounds import check_deadline
from cim.errors import InvalidInput
from cim.services.gas.gas_pipes import GasPipe
from cim.services.gas.models import SensorSite, SensorSuggestion
from cim.services.gas.risk import pipe_factors
from cim.services.gas.spaces import Space
from cim.services.shelters.solver import solve_mclp

DEFAULT_PIECE_M = 10.0
"""Length of the gas-pipe pieces the demand is cut into (m)."""
MAX_PIECES = 200_000
"""Refuse to cut the scope into more pieces than this (ask for longer pieces or an area)."""


def pipe_pieces(
    pipes: list[GasPipe], *, piece_m: float, as_of_year: int
) -> tuple[list[shapely.LineString], np.ndarray]:
    """Equal 2D pieces of at most ``piece_m`` of every pipe, and their weights."""
    if piece_m <= 0:
        raise InvalidInput("piece_m must be positive")
    exact = [shapely.force_2d(p.line).length / piece_m for p in pipes]
    if not math.isfinite(sum(exact)) or sum(exact) + len(pipes) > MAX_PIECES:
        raise InvalidInput(
            f"the gas pipes make more than {MAX_PIECES:,} pieces of {piece_m:g} m:"
            " ask for longer pieces or a smaller area"
        )
    counts = [max(1, math.ceil(n)) for n in exact]
    pieces: list[shapely.LineString] = []
    weights: list[float] = []
    for pipe, count in zip(pipes, counts, strict=True):
        check_deadline("gas sensors: cutting the pipes")
        flat = shapely.force_2d(pipe.line)
        step = flat.length / count
        pressure, condition = pipe_factors(
            pressure_rank=pipe.pressure_rank,
            material=pipe.material,
            year=pipe.year,
            as_of_year=as_of_year,
        )
        for i in range(count):
            pieces.append(substring(flat, i * step, (i + 1) * step))
            weights.append(step * pressure * condition)
    return pieces, np.asarray(weights, dtype=np.float64)


def suggest_sensor_sites(
    pipes: list[GasPipe],
    spaces: list[Space],
    *,
    k: int,
    radius_m: float,
    piece_m: float = DEFAULT_PIECE_M,
    as_of_year: int,
) -> SensorSuggestion:
    """The ``k`` spaces (of ``spaces``) covering the most weighted gas-pipe length."""
    if k < 1:
        raise InvalidInput("sensors: k must be at least 1")
    pieces, weight = pipe_pieces(pipes, piece_m=piece_m, as_of_year=as_of_year)
    tree = shapely.STRtree(pieces)
    sites = [s.geom for s in spaces]
    site_index, piece_index = tree.query(sites, predicate="dwithin", distance=radius_m)
    order = np.lexsort((site_index, piece_index))
    pair_demand = piece_index[order].astype(np.int64)
    pair_site = site_index[order].astype(np.int64)
    found = solve_mclp(weight, pair_demand, pair_site, len(spaces), k)
    alone = np.zeros(len(spaces))
    np.add.at(alone, pair_site, weight[pair_demand])
    chosen = sorted(found.chosen.tolist(), key=lambda j: (-alone[j], j))
    total = float(weight.sum())
    return SensorSuggestion(
        k=k,
        piece_m=piece_m,
        sites=[
            SensorSite(
                layer=spaces[j].layer,
                id=spaces[j].id,
                code=spaces[j].code,
                space_type=spaces[j].space_type,
                covered_weight=round(float(alone[j]), 3),
            )
            for j in chosen
        ],
        covered_weight=round(found.covered, 3),
        total_weight=round(total, 3),
        covered_share=round(found.covered / total, 4) if total > 0 else 0.0,
        method=found.method,
        status=found.status,
    )

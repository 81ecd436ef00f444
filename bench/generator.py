"""A deterministic (seeded) synthetic city for benchmarks: streets, buildings, pipes, people.

One generator for every bench, so figures are comparable between runs and between benches.
The city is a grid of blocks around an origin in the storage CRS (default EPSG:4547, a point in
Wuhan's Gauss-Kruger zone); every street carries a water main (JS) and a sewer (PS), optionally
gas (RQ) and power (DL). Everything is generated, nothing here is real data.

Examples
--------
>>> city = SyntheticCity(seed=1, blocks_x=2, blocks_y=2)
>>> len(list(city.buildings())) == city.building_count
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

ORIGIN_4547 = (534_000.0, 3_380_000.0)  # near 114.35E 30.54N (Wuhan), CGCS2000 GK CM 114E
UTILITIES = ("JS", "PS", "RQ", "DL")
DEPTHS = {"JS": 1.2, "PS": 2.5, "RQ": 1.0, "DL": 0.8}  # typical cover to pipe top (m)
OFFSETS = {"JS": -4.0, "PS": 0.0, "RQ": 4.0, "DL": 6.0}  # across the street from its axis (m)
DIAMETERS = {
    "JS": (100, 200, 300, 600),
    "PS": (300, 400, 600, 1000),
    "RQ": (100, 160, 200),
    "DL": (200,),
}


@dataclass(frozen=True)
class Node:
    code: str
    utility: str
    x: float
    y: float
    ground_z: float
    kind: str


@dataclass(frozen=True)
class Segment:
    code: str
    utility: str
    start: str
    end: str
    coords: tuple[tuple[float, float, float], tuple[float, float, float]]
    diameter_mm: int
    material: str
    year: int


@dataclass(frozen=True)
class BuildingBlock:
    code: str
    footprint: tuple[tuple[float, float], ...]
    base_z: float
    height: float


@dataclass
class SyntheticCity:
    """A ``blocks_x`` x ``blocks_y`` grid of blocks, ``block_size`` m wide, streets between."""

    seed: int = 42
    blocks_x: int = 10
    blocks_y: int = 10
    block_size: float = 120.0
    street_width: float = 20.0
    buildings_per_block: int = 4
    utilities: tuple[str, ...] = UTILITIES
    nodes_per_street: int = 4
    origin: tuple[float, float] = ORIGIN_4547
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def pitch(self) -> float:
        return self.block_size + self.street_width

    @property
    def building_count(self) -> int:
        return self.blocks_x * self.blocks_y * self.buildings_per_block

    def ground_z(self, x: float, y: float) -> float:
        """A smooth deterministic terrain (m), the same for every consumer."""
        u = (x - self.origin[0]) / 900.0
        v = (y - self.origin[1]) / 700.0
        return 20.0 + 6.0 * math.sin(u) * math.cos(v) + 0.002 * (x - self.origin[0])

    def buildings(self) -> Iterator[BuildingBlock]:
        rng = np.random.default_rng(self.seed + 1)
        side = math.ceil(math.sqrt(self.buildings_per_block))
        cell = self.block_size / side
        for bx in range(self.blocks_x):
            for by in range(self.blocks_y):
                x0 = self.origin[0] + bx * self.pitch + self.street_width / 2
                y0 = self.origin[1] + by * self.pitch + self.street_width / 2
                for k in range(self.buildings_per_block):
                    cx = x0 + (k % side + 0.5) * cell
                    cy = y0 + (k // side + 0.5) * cell
                    w, d = rng.uniform(0.4, 0.8, 2) * cell
                    fp = (
                        (cx - w / 2, cy - d / 2),
                        (cx + w / 2, cy - d / 2),
                        (cx + w / 2, cy + d / 2),
                        (cx - w / 2, cy + d / 2),
                        (cx - w / 2, cy - d / 2),
                    )
                    yield BuildingBlock(
                        code=f"B{bx:03d}{by:03d}{k:02d}",
                        footprint=fp,
                        base_z=self.ground_z(cx, cy),
                        height=float(rng.uniform(9, 90)),
                    )

    def _street_lines(self) -> Iterator[tuple[str, tuple[float, float], tuple[float, float]]]:
        x_end = self.origin[0] + self.blocks_x * self.pitch
        y_end = self.origin[1] + self.blocks_y * self.pitch
        for i in range(self.blocks_x + 1):
            x = self.origin[0] + i * self.pitch
            yield f"V{i:04d}", (x, self.origin[1]), (x, y_end)
        for j in range(self.blocks_y + 1):
            y = self.origin[1] + j * self.pitch
            yield f"H{j:04d}", (self.origin[0], y), (x_end, y)

    def pipes(self) -> tuple[list[Node], list[Segment]]:
        """Nodes and segments of every utility along every street (ends shared per street)."""
        rng = np.random.default_rng(self.seed + 2)
        nodes: list[Node] = []
        segments: list[Segment] = []
        for utility in self.utilities:
            for name, (xa, ya), (xb, yb) in self._street_lines():
                vertical = xa == xb
                count = max(
                    2, int(math.hypot(xb - xa, yb - ya) / self.pitch) * self.nodes_per_street + 1
                )
                prev: Node | None = None
                diameter = int(rng.choice(DIAMETERS[utility]))
                for n in range(count):
                    t = n / (count - 1)
                    x = xa + (xb - xa) * t + (OFFSETS[utility] if vertical else 0.0)
                    y = ya + (yb - ya) * t + (0.0 if vertical else OFFSETS[utility])
                    kind = (
                        "valve"
                        if utility in ("JS", "RQ") and n % 5 == 2
                        else ("manhole" if utility == "PS" else "junction")
                    )
                    node = Node(
                        f"{utility}{name}N{n:04d}", utility, x, y, self.ground_z(x, y), kind
                    )
                    nodes.append(node)
                    if prev is not None:
                        depth = DEPTHS[utility] + diameter / 1000
                        za = prev.ground_z - depth
                        zb = node.ground_z - depth - (0.3 if utility == "PS" else 0.0)
                        segments.append(
                            Segment(
                                code=f"{utility}{name}S{n:04d}",
                                utility=utility,
                                start=prev.code,
                                end=node.code,
                                coords=((prev.x, prev.y, za), (x, y, zb)),
                                diameter_mm=diameter,
                                material=str(rng.choice(["PE", "DI", "PVC", "RC"])),
                                year=int(rng.integers(1980, 2025)),
                            )
                        )
                    prev = node
        return nodes, segments

    def population(self, units_x: int, units_y: int) -> Iterator[tuple[str, float, float, float]]:
        """Population points (code, x, y, persons) on a regular grid over the city."""
        rng = np.random.default_rng(self.seed + 3)
        width = self.blocks_x * self.pitch
        height = self.blocks_y * self.pitch
        for i in range(units_x):
            for j in range(units_y):
                x = self.origin[0] + (i + 0.5) * width / units_x
                y = self.origin[1] + (j + 0.5) * height / units_y
                yield f"U{i:05d}{j:05d}", x, y, float(rng.integers(0, 400))

    def shelters(self, count: int) -> Iterator[tuple[str, float, float, float]]:
        """Shelter points (name, x, y, capacity) spread uniformly over the city."""
        rng = np.random.default_rng(self.seed + 4)
        width = self.blocks_x * self.pitch
        height = self.blocks_y * self.pitch
        for k in range(count):
            x, y = rng.uniform(0, 1, 2) * (width, height)
            yield (
                f"S{k:05d}",
                self.origin[0] + x,
                self.origin[1] + y,
                float(rng.integers(500, 20000)),
            )


def city_for_segments(target_segments: int, seed: int = 42) -> SyntheticCity:
    """A square city with about ``target_segments`` pipe segments over its utilities."""
    per_block_street = 2 * 4 * len(UTILITIES)  # two streets per block, 4 segments each
    side = max(1, int(math.sqrt(target_segments / per_block_street)))
    return SyntheticCity(seed=seed, blocks_x=side, blocks_y=side)

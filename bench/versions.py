"""Bench: incremental tiles after a new version of one district's pipes, against a full rebuild.

A generated city (bench/generator.py) of ``--segments`` pipe segments is imported as one
dataset and tiled (the ``pipes`` layer, every utility in it). Then the same network is imported
again under the same name with one *district* changed — the ``--changed`` share (1 %) of the
segments nearest the city's south-west corner, each moved 2 m and made DN+100 (the import of
bench/time_travel.py) — so the versions merge (cim/services/versions/merge.py) makes it
version 2. The layer is then refreshed incrementally (tiles/incremental.py), and the same state
is rebuilt in full into another folder, side by side.
Printed: the load average, rows version 2 stored again (history + rows rewritten or added) vs
total, full rebuild seconds vs incremental seconds and their ratio, the incremental update's
seconds per stage (logged by tiles/incremental.py; "outside the refresh" is the build's own
bookkeeping: versions read, result recorded), tiles rewritten / total, and whether the
refreshed ``tileset.json`` and manifest are byte-identical to the full rebuild's.
Goals (issue 18): <= 2 % of the rows stored again; the incremental update <= 5 % of a full
rebuild's time and <= 5 % of the tiles rewritten.
Usage: ``python bench/versions.py [--segments 200000] [--changed 0.01] [--profile FILE]``
(the issue's scale is ``--segments 1000000``; ``--profile`` writes cProfile stats of the
incremental update to FILE).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, text

from bench.common import bench_database
from bench.generator import SyntheticCity, city_for_segments
from bench.time_travel import _import as import_version  # the versioned import of the city
from tiles.build import build_mesh_layer
from tiles.record import BuildResult

GOAL_STORED_SHARE = 0.02
GOAL_TIME_SHARE = 0.05
GOAL_TILE_SHARE = 0.05
EVERY_CLASS: frozenset[str] = frozenset()  # no restricted split: one layer holds every pipe


def district(city: SyntheticCity, share: float) -> set[str]:
    """Codes of the ``share`` of segments nearest the south-west corner (a square district)."""
    _, segments = city.pipes()
    x0, y0 = city.origin

    def reach(coords: tuple[tuple[float, float, float], ...]) -> float:
        return max(max(abs(x - x0), abs(y - y0)) for x, y, _ in coords)

    ordered = sorted(segments, key=lambda s: reach(s.coords))
    return {s.code for s in ordered[: int(len(segments) * share)]}


class _Stages(logging.Handler):
    """Collects the stage timings tiles/incremental.py logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.stages: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.stages = dict(getattr(record, "stages", {}))


def _timed_build(
    engine: Engine, out: Path, *, full: bool, profile: str | None = None
) -> tuple[BuildResult, float]:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = build_mesh_layer(engine, out, "pipes", sensitive=EVERY_CLASS, full=full)
    seconds = time.perf_counter() - started
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    return result, seconds


def _stored_again(engine: Engine, v1_time: object) -> tuple[int, int]:
    """(rows version 2 wrote: history + rewritten/added, rows of the current version)."""
    with engine.connect() as conn:
        history = conn.execute(text("SELECT count(*) FROM feature_history")).scalar_one()
        rewritten = total = 0
        for table in ("pipe_node", "pipe_segment"):
            rewritten += conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE valid_from > :v1"), {"v1": v1_time}
            ).scalar_one()
            total += conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    return history + rewritten, total


def _verdict(value: float, goal: float) -> str:
    return "ok" if value <= goal else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=200_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", default=None, help="cProfile stats file (incremental)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2-core machine)", flush=True)
    city = city_for_segments(args.segments)
    changed = district(city, args.changed)
    out = Path(tempfile.mkdtemp(prefix="cim-bench-versions-"))
    try:
        with bench_database(args.database_url) as engine:
            first_import = import_version(engine, city, set(), 1)
            with engine.connect() as conn:
                v1_time = conn.execute(text("SELECT max(created_at) FROM dataset_version"))
                v1_time = v1_time.scalar_one()
            first, first_seconds = _timed_build(engine, out / "live", full=False)
            print(f"version 1: imported in {first_import:.1f} s, {first.features:,} features "
                  f"in {first.tiles:,} tiles built in {first_seconds:.1f} s",
                  flush=True)  # fmt: skip
            second_import = import_version(engine, city, changed, 2)
            stored, total = _stored_again(engine, v1_time)
            print(f"version 2: {len(changed):,} segments of one district changed, merged in "
                  f"{second_import:.1f} s; rows stored again {stored:,} of {total:,} = "
                  f"{stored / total:.2%} (goal <= {GOAL_STORED_SHARE:.0%}: "
                  f"{_verdict(stored / total, GOAL_STORED_SHARE)})", flush=True)  # fmt: skip
            _report(engine, out, args.profile)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def _report(engine: Engine, out: Path, profile: str | None) -> None:
    """Refresh incrementally, rebuild in full beside it, print the comparison."""
    stages = _Stages()
    logger = logging.getLogger("tiles.incremental")
    logger.addHandler(stages)
    logger.setLevel(logging.DEBUG)
    refreshed, incremental_seconds = _timed_build(engine, out / "live", full=False, profile=profile)
    logger.removeHandler(stages)
    print(f"incremental: mode {refreshed.mode} {refreshed.full_reason}".rstrip(), flush=True)
    print(f"incremental stages (load average {os.getloadavg()[0]:.2f}):")
    for stage, seconds in stages.stages.items():
        print(f"  {stage:<24} {seconds:7.3f} s")
    outside = incremental_seconds - sum(stages.stages.values())
    print(f"  {'outside the refresh':<24} {outside:7.3f} s")
    _, full_seconds = _timed_build(engine, out / "full", full=True)
    time_share = incremental_seconds / full_seconds
    tile_share = refreshed.tiles_rewritten / refreshed.tiles
    print(f"full rebuild {full_seconds:.1f} s vs incremental {incremental_seconds:.1f} s: "
          f"{time_share:.2%} (goal <= {GOAL_TIME_SHARE:.0%}: "
          f"{_verdict(time_share, GOAL_TIME_SHARE)})")  # fmt: skip
    print(f"tiles rewritten {refreshed.tiles_rewritten:,} of {refreshed.tiles:,} = "
          f"{tile_share:.2%} (goal <= {GOAL_TILE_SHARE:.0%}: "
          f"{_verdict(tile_share, GOAL_TILE_SHARE)})")  # fmt: skip
    same = (out / "live" / "pipes" / "tileset.json").read_bytes() == (
        out / "full" / "pipes" / "tileset.json"
    ).read_bytes()
    print(f"refreshed tileset.json identical to the full rebuild's: {'yes' if same else 'NO'}")
    same = (out / "live" / "pipes" / "manifest.npz").read_bytes() == (
        out / "full" / "pipes" / "manifest.npz"
    ).read_bytes()
    print(f"refreshed manifest identical to the full rebuild's: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()

"""A large layer's tiles rendered in forked processes (tiles.forked) are the very files one
process writes: the oracle is the single-process build of the same city, byte for byte.

The city is test_city_hierarchy's (LOD1 blocks, LOD2 houses, IFC elements): blocks, surfaces
and elements all go through the children. ``CIM_TILES_PROCESSES`` forces the fork on a city
far smaller than the size that forks by default.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine

import tiles.write
from cim.errors import InvalidInput, TilingError
from tests.tiles.test_city_hierarchy import BUDGET, city_engine  # noqa: F401 (a fixture)
from tiles import forked
from tiles.build import build_mesh_layer

BATCH = 500
"""Triangles per content query here: dozens of batches for the processes to share (the default
batch would hold the whole test city)."""


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Small batches, and the process counts of each forked render (none: one process)."""
    monkeypatch.setattr(tiles.write, "BATCH_TRIANGLES", BATCH)
    forks: list[int] = []
    real = tiles.write.render_forked

    def counted(*args: object) -> object:
        forks.append(int(args[4]))  # type: ignore[call-overload]
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(tiles.write, "render_forked", counted)
    return forks


def _files(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_three_processes_write_the_files_one_writes(
    city_engine: Engine,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_batches: list[int],
) -> None:
    monkeypatch.setenv(forked.PROCESSES_VARIABLE, "1")
    one = build_mesh_layer(
        city_engine, tmp_path / "one", "buildings", force=True, max_triangles=BUDGET
    )
    monkeypatch.setenv(forked.PROCESSES_VARIABLE, "3")
    told: list[tuple[int, int]] = []
    three = build_mesh_layer(
        city_engine,
        tmp_path / "three",
        "buildings",
        force=True,
        max_triangles=BUDGET,
        progress=lambda done, total: told.append((done, total)),
    )
    assert small_batches == [3]  # the second build forked, the first did not
    assert (three.tiles, three.features, three.bytes) == (one.tiles, one.features, one.bytes)
    assert _files(tmp_path / "three") == _files(tmp_path / "one")
    assert told[-1] == (one.features, one.features)
    assert [done for done, _ in told] == sorted(done for done, _ in told)


def test_a_failing_child_fails_the_build_and_keeps_the_old_tiles(
    city_engine: Engine,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_batches: list[int],
) -> None:
    build_mesh_layer(city_engine, tmp_path, "buildings", force=True, max_triangles=BUDGET)
    before = _files(tmp_path)
    monkeypatch.setenv(forked.PROCESSES_VARIABLE, "2")
    real = forked._child

    def broken(*args: object) -> None:
        engine, _render_part, share, pipe, parent = args

        def fails(*_: object) -> list[object]:
            raise OSError("No space left on device")

        real(engine, fails, share, pipe, parent)  # type: ignore[arg-type]

    monkeypatch.setattr(forked, "_child", broken)
    with pytest.raises(TilingError, match="No space left on device"):
        build_mesh_layer(city_engine, tmp_path, "buildings", force=True, max_triangles=BUDGET)
    assert small_batches == [2]
    assert _files(tmp_path) == before


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_process_count_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(forked.PROCESSES_VARIABLE, value)
    with pytest.raises(InvalidInput, match=forked.PROCESSES_VARIABLE):
        forked.processes_for(10**9)


def test_small_layers_stay_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(forked.PROCESSES_VARIABLE, raising=False)
    assert forked.processes_for(forked.FORK_MIN_TRIANGLES - 1) == 1
    assert forked.processes_for(forked.FORK_MIN_TRIANGLES) >= 1


def test_a_child_that_dies_fails_the_build(
    city_engine: Engine,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_batches: list[int],
) -> None:
    """A child killed before it sends anything (as the OOM killer would) fails the build."""
    monkeypatch.setenv(forked.PROCESSES_VARIABLE, "2")
    monkeypatch.setattr(forked, "_child", lambda *_: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(TilingError, match="died"):
        build_mesh_layer(city_engine, tmp_path, "buildings", force=True, max_triangles=BUDGET)
    assert small_batches == [2]
    assert not (tmp_path / "buildings").exists()

"""How ``make test`` spreads the test files over its two xdist workers, and why.

``--dist loadfile`` sends whole files to workers, so a file's module and session fixtures are
built once. Two things made the suite longer than its work:

* files that share an expensive session fixture ran on different workers and each built it
  (the demo city - ``cim demo`` and its tiles - was loaded twice, once for the viewer tests and
  once for the language tests): :data:`SHARED_SCOPES` puts them in one unit of work;
* xdist orders units by their number of tests, so the few long ones (browser tests, the IFC
  oracle) started last and one worker ran alone at the end: :data:`LONGEST_FIRST` starts the
  longest units first (longest-processing-time scheduling), the rest follow in collection order.

The lists are hints from ``--durations``; a file missing from them is still run, only later.
A worker that ran the browser files keeps Playwright's sync-API event loop running in its main
thread for the rest of the session: a later test that needs ``asyncio.run`` runs it on a thread.
"""

from __future__ import annotations

from typing import Any

import pytest

SHARED_SCOPES = {
    "tests/viewer/test_viewer.py": "demo city (browser)",
    "tests/viewer/test_viewer_i18n.py": "demo city (browser)",
}
"""File -> unit of work, for files that share a costly session fixture."""

LONGEST_FIRST = (
    "demo city (browser)",
    "tests/importers/test_ifc_import.py",
    "tests/cim/test_backup.py",
    "tests/cli/test_cli.py",
    "tests/viewer/test_viewer_cambridge.py",
    "tests/viewer/test_viewer_monitoring.py",
    "tests/viewer/test_viewer_flood_shelters.py",
    "tests/importers/test_pointcloud.py",
    "tests/importers/test_terrain.py",
    "tests/faults/test_import_kill.py",
    "tests/api/test_terrain_api.py",
    "tests/api/test_schemathesis_reader.py",
    "tests/viewer/test_viewer_versions.py",
    "tests/cim/test_simulation_flood.py",
    "tests/api/test_schemathesis.py",
    "tests/faults/test_worker_kill.py",
)
"""Units of work, longest first (measured with ``--durations``)."""


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its file, or the shared scope its file belongs to."""
    path = nodeid.split("::", 1)[0]
    return SHARED_SCOPES.get(path, path)


def order_longest_first(items: list[pytest.Item]) -> None:
    """Reorder collected tests in place: the units of :data:`LONGEST_FIRST` first, in that
    order, each unit's tests kept together; the others after, as collected."""
    rank = {unit: position for position, unit in enumerate(LONGEST_FIRST)}
    first_seen: dict[str, int] = {}
    for position, item in enumerate(items):
        first_seen.setdefault(unit_of(item.nodeid), position)

    def key(indexed: tuple[int, pytest.Item]) -> tuple[int, int, int]:
        position, item = indexed
        unit = unit_of(item.nodeid)
        return (rank.get(unit, len(rank)), first_seen[unit], position)

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


def make_scheduler(config: Any, log: Any) -> Any:
    """A ``loadscope`` scheduler whose scopes are :func:`unit_of`, kept in collection order."""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep the longest-first order of the collection
    return SharedFixtureScheduling(config, log)

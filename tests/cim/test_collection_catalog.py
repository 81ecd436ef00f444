"""The collection list is recomputed (extents: full scans) only when the data changed."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from cim.services.ogc import collections
from cim.services.ogc.collections import CollectionCatalog, data_signature
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network


def test_discover_runs_again_only_after_a_data_change(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = collections.discover

    def counting(s: Session) -> dict[str, collections.CollectionInfo]:
        calls.append(1)
        return real(s)

    monkeypatch.setattr(collections, "discover", counting)
    catalog = CollectionCatalog(ttl_seconds=0)  # check the signature on every call
    first = catalog.get(session)
    assert catalog.get(session) is first and catalog.get(session) is first
    assert len(calls) == 1

    before = data_signature(session)
    dataset = make_dataset(session, "catalog-check")
    write_network(
        session,
        dataset,
        [N("a", 0, 0, 10.0, "JS"), N("b", 10, 0, 10.0, "JS")],
        [S("ab", "a", "b", "JS")],
    )
    assert data_signature(session) != before
    after = catalog.get(session)
    assert len(calls) == 2
    assert "pipe_segments" in after and after["pipe_segments"].extent is not None

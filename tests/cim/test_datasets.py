"""Dataset lifecycle: loading -> ready in one transaction, same file is a no-op, delete cascades."""

from __future__ import annotations

import pytest
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.rows import NodeRow, SegmentRow, copy_nodes, copy_segments
from cim.db.models import Dataset, PipeNode, PipeSegment
from cim.errors import InvalidInput, NotFound
from cim.services import datasets as svc


def _source(sha: str = "a" * 64) -> svc.DatasetSource:
    return svc.DatasetSource(kind="pipes", name="net", source_name="net.csv", source_sha256=sha)


def _write_two_nodes_and_a_segment(session: Session, dataset: Dataset) -> None:
    nodes = [NodeRow("J0", 500000, 3000000, 10), NodeRow("J1", 500010, 3000000, 10)]
    node_ids = copy_nodes(session, dataset_id=dataset.id, srid=4547, nodes=nodes)
    line = shapely.LineString([(500000, 3000000, 9), (500010, 3000000, 9)])
    segment = SegmentRow("P1", "J0", "J1", line)
    copy_segments(session, dataset_id=dataset.id, srid=4547, segments=[segment], node_ids=node_ids)


def test_lifecycle_noop_replace_and_cascade(session: Session) -> None:
    start = svc.begin_dataset(session, source=_source(), replace=False)
    assert start.created and start.dataset.status == "loading"
    _write_two_nodes_and_a_segment(session, start.dataset)
    svc.complete_dataset(session, dataset=start.dataset, counts={"pipe_node": 2, "pipe_segment": 1})
    assert start.dataset.status == "ready" and start.dataset.ready_at is not None

    again = svc.begin_dataset(session, source=_source(), replace=False)
    assert not again.created and again.dataset.id == start.dataset.id

    # pipes are versioned: a replace writes a staging copy that becomes version 2
    replaced = svc.begin_dataset(session, source=_source(), replace=True)
    assert replaced.created and replaced.previous is start.dataset
    _write_two_nodes_and_a_segment(session, replaced.dataset)
    svc.complete_dataset(session, dataset=replaced.dataset, counts={}, previous=replaced.previous)
    assert session.get(Dataset, replaced.dataset.id) is None  # the staging copy folded in
    assert [d.id for d in svc.list_datasets(session, kind="pipes")] == [start.dataset.id]
    assert session.scalar(select(func.count()).select_from(PipeNode)) == 2
    svc.delete_dataset(session, dataset_id=start.dataset.id)
    assert session.scalar(select(func.count()).select_from(PipeSegment)) == 0
    assert session.scalar(select(func.count()).select_from(PipeNode)) == 0
    with pytest.raises(NotFound):
        svc.get_dataset(session, dataset_id=start.dataset.id)


def test_replace_of_an_unversioned_kind_deletes_the_old_dataset(session: Session) -> None:
    source = svc.DatasetSource(
        kind="roads", name="roads", source_name="roads.geojson", source_sha256="b" * 64
    )
    start = svc.begin_dataset(session, source=source, replace=False)
    svc.complete_dataset(session, dataset=start.dataset, counts={})
    replaced = svc.begin_dataset(session, source=source, replace=True)
    assert replaced.created and replaced.replaced_id == start.dataset.id
    assert replaced.previous is None
    assert session.get(Dataset, start.dataset.id) is None


def test_unknown_kind_is_refused(session: Session) -> None:
    source = _source()
    source.kind = "lidar"
    with pytest.raises(InvalidInput, match="lidar"):
        svc.begin_dataset(session, source=source, replace=False)


def test_file_sha256_of_several_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "b").write_bytes(b"def")
    assert svc.file_sha256(tmp_path / "a", tmp_path / "b") == hashlib.sha256(b"abcdef").hexdigest()

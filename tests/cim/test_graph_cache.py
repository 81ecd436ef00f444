"""The graph cache builds a graph once however many requests ask for it at the same time, with
the statement timeout lifted for the build and put back after it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.services.graph_cache import GraphCache


def test_concurrent_callers_share_one_build(engine: Engine) -> None:
    cache: GraphCache[object] = GraphCache(size=2)
    builds: list[int] = []
    gate = threading.Barrier(6)

    def build() -> object:
        builds.append(threading.get_ident())
        time.sleep(0.5)  # long enough for every other caller to arrive meanwhile
        return object()

    def ask(_: int) -> tuple[object, bool]:
        with Session(engine) as session, session.begin():
            gate.wait()
            return cache.get_or_build(("roads", 1), session, build)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, range(6)))
    assert len(builds) == 1
    assert len({id(graph) for graph, _ in answers}) == 1
    assert sorted(cached for _, cached in answers) == [False] + [True] * 5


def test_timeout_is_lifted_for_the_build_only(engine: Engine) -> None:
    cache: GraphCache[str] = GraphCache(size=2)
    with Session(engine) as session, session.begin():
        session.execute(text("SET LOCAL statement_timeout = '1500ms'"))

        def build() -> str:
            return str(session.execute(text("SHOW statement_timeout")).scalar_one())

        during, cached = cache.get_or_build("k", session, build)
        after = session.execute(text("SHOW statement_timeout")).scalar_one()
    assert (during, cached, after) == ("10min", False, "1500ms")


def test_a_failed_build_is_retried_by_the_next_caller(engine: Engine) -> None:
    cache: GraphCache[str] = GraphCache(size=1)

    def broken() -> str:
        raise RuntimeError("database went away")

    with Session(engine) as session, session.begin(), pytest.raises(RuntimeError):
        cache.get_or_build("k", session, broken)
    with Session(engine) as session, session.begin():
        assert cache.get_or_build("k", session, lambda: "built") == ("built", False)
        assert cache.get_or_build("j", session, lambda: "other") == ("other", False)
    assert cache.get("k") is None  # size 1: the least recently used went

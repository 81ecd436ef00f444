"""A small per-process cache of in-memory graphs, built once per key even under concurrency.

Why: the pipe and road graphs are built from the database the first time an analysis needs
them (seconds for a million segments) and then answer requests in milliseconds. A server takes
many requests at once: without care, every request that arrives during the first build starts
its own build, which multiplies the database and CPU load exactly when the machine is busiest
(``bench/load.py`` saw builds pile up past the statement timeout and never finish). Here one
caller builds while the others for the same key wait for its result ("single flight"); a failed
build raises in the caller that ran it and the next caller tries again. Keys are dataset
versions, which never change once ready, so entries never go stale - the cache only keeps the
most recently used ``size`` of them.

A build also lifts the transaction's ``statement_timeout`` (the API sets one per connection):
it is a one-off cache fill whose cost grows with the dataset, not a request a user waits on
alone, and cutting it short would only make the next request start over.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds

Graph = TypeVar("Graph")

BUILD_TIMEOUT = "10min"


class GraphCache(Generic[Graph]):
    """Least-recently-used graphs by key, each built by one caller at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._graphs: OrderedDict[Hashable, Graph] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Graph | None:
        with self._lock:
            graph = self._graphs.get(key)
            if graph is not None:
                self._graphs.move_to_end(key)
            return graph

    def get_or_build(
        self, key: Hashable, session: Session, build: Callable[[], Graph]
    ) -> tuple[Graph, bool]:
        """The graph of ``key`` and whether it was already there (or built by another caller)."""
        graph = self.get(key)
        if graph is not None:
            return graph, True
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            graph = self.get(key)
            if graph is not None:
                return graph, True
            with bounds.shielded():  # nor does the request's deadline cut it short
                previous = session.execute(text("SHOW statement_timeout")).scalar_one()
                session.execute(text(f"SET LOCAL statement_timeout = '{BUILD_TIMEOUT}'"))
                graph = build()  # on an error the transaction rolls back, and the SET LOCAL too
                session.execute(
                    text("SELECT set_config('statement_timeout', :value, true)"),
                    {"value": previous},
                )
            with self._lock:
                self._graphs[key] = graph
                while len(self._graphs) > self.size:
                    self._graphs.popitem(last=False)
                self._building.pop(key, None)
        return graph, False

    def clear(self) -> None:
        with self._lock:
            self._graphs.clear()

"""Bulkheads for analyses: a few run at once per process, a few wait briefly, the rest get
503 + ``Retry-After`` at once, so fast routes (items, tiles, health) never queue behind them.

Two lanes. Heavy analyses (:data:`HEAVY_ROUTES`: graph walks, pair checks, solvers) may hold a
worker for seconds and get their own threads (``api.setup.size_thread_pool``). Every other
request under ``/analysis/`` (query, section, QC) is lighter but still several queries and
some geometry: on a loaded server with no bound the waiting requests piled up in front of the
worker threads, and items waited behind them (``bench/load.py``: items p99 0.8 s); bounded,
they take at most ``CIM_ANALYSIS_CONCURRENCY`` of the request threads.

Pure ASGI, in front of the routes: the lanes are named by method and path, no route is edited.
A request waiting for a slot holds no worker thread and no database connection; a slot is held
until the answer has been sent.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from api.analysis_proxy import ANALYSIS_PREFIX, app_path
from api.errors import problem
from api.metrics import count_shed

HEAVY_ROUTES = (
    ("POST", "/analysis/pipes/isolation"),
    ("POST", "/analysis/pipes/clearance"),
    ("POST", "/analysis/pipes/clashes"),
    ("POST", "/analysis/pipes/excavation"),
    ("POST", "/analysis/pipes/trace"),
    ("POST", "/analysis/pipes/shutdown"),
    ("POST", "/analysis/pipes/shutdowns"),
    ("POST", "/analysis/drainage/flood"),
    ("POST", "/analysis/drainage/flood/hazards"),
    ("POST", "/analysis/gas/adjacent-spaces"),
    ("GET", "/analysis/pipes/profile"),
    ("POST", "/analysis/shelters/plans"),
    ("POST", "/analysis/shelters/suggest"),
)
"""The analyses that may hold a worker for seconds: graph walks, pair checks, solvers."""


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    granted: bool = False


@dataclass
class Slots:
    """``size`` slots and a queue of at most ``queue`` waiters, each waiting ``wait_s`` at most.

    Thread-safe (a lock guards the counters), so requests on different event loops (test
    clients) share it like the requests of one uvicorn process do.
    """

    size: int
    queue: int
    wait_s: float
    running: int = 0
    _waiting: deque[_Waiter] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def acquire(self) -> bool:
        """Take a slot (waiting in the queue if there is room); False when refused."""
        with self._lock:
            if self.running < self.size:
                self.running += 1
                return True
            if len(self._waiting) >= self.queue:
                return False
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop, loop.create_future())
            self._waiting.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.wait_s)
        except TimeoutError:
            return not self._abandon(waiter)  # granted just as the wait ended: run
        except asyncio.CancelledError:  # the client left while waiting
            if not self._abandon(waiter):
                self.release()
            raise
        return True

    def _abandon(self, waiter: _Waiter) -> bool:
        """Leave the queue; False when the slot was already handed to ``waiter``."""
        with self._lock:
            if waiter.granted:
                return False
            self._waiting.remove(waiter)
            return True

    def release(self) -> None:
        """Give the slot to the first waiter, or free it."""
        with self._lock:
            if self._waiting:
                waiter = self._waiting.popleft()
                waiter.granted = True  # the slot passes on: ``running`` stays the same
                waiter.loop.call_soon_threadsafe(_wake, waiter.future)
            else:
                self.running -= 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True)
class Lane:
    """The slots of one kind of request and how a refusal names them."""

    what: str
    settings: str
    slots: Slots


class Bulkhead:
    """Run :data:`HEAVY_ROUTES` in the heavy lane and the other ``/analysis/`` requests in the
    analysis lane; refuse with 503 + Retry-After beyond."""

    def __init__(
        self,
        app: ASGIApp,
        concurrency: int,
        queue: int,
        queue_seconds: float,
        analysis_concurrency: int,
        analysis_queue: int,
    ) -> None:
        self.app = app
        self.heavy = Lane(
            "heavy analyses",
            "CIM_HEAVY_CONCURRENCY, CIM_HEAVY_QUEUE",
            Slots(concurrency, queue, queue_seconds),
        )
        self.analyses = Lane(
            "analyses",
            "CIM_ANALYSIS_CONCURRENCY, CIM_ANALYSIS_QUEUE",
            Slots(analysis_concurrency, analysis_queue, queue_seconds),
        )
        self.routes = [(method, compile_path(path)[0]) for method, path in HEAVY_ROUTES]

    def lane(self, scope: Scope) -> Lane | None:
        """The lane of a request; None for every route outside ``/analysis/``."""
        path = app_path(scope)  # mounted under a prefix: match the app's own path
        if not path.startswith(ANALYSIS_PREFIX):
            return None
        method = scope["method"]
        if any(method == heavy and regex.match(path) for heavy, regex in self.routes):
            return self.heavy
        return self.analyses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane(scope) if scope["type"] == "http" else None
        if lane is None:
            await self.app(scope, receive, send)
            return
        if not await lane.slots.acquire():
            await self._refuse(lane, scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            lane.slots.release()

    async def _refuse(self, lane: Lane, scope: Scope, receive: Receive, send: Send) -> None:
        slots = lane.slots
        count_shed("heavy" if lane is self.heavy else "analysis")
        response = problem(
            503,
            "Overloaded",
            f"{slots.size} {lane.what} are running and {slots.queue} waiting "
            f"({lane.settings}); retry shortly",
            {"Retry-After": str(max(1, round(slots.wait_s)))},
        )
        await response(scope, receive, send)

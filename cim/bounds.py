"""Per-request bounds of the analyses: answer caps and one deadline, checked at named steps.

An analysis request must not hold a worker for minutes nor answer hundreds of megabytes. The
API gives each analysis request one :class:`Bounds` (``api.bounds``, from settings): the caps
on ``limit``, on the area examined and on highlighted features, and a :class:`Deadline` for the
whole request - SQL and Python alike. Services read it with :func:`current` and call
:func:`check_deadline` at the named steps of their long loops; the API cancels the deadline when
the client goes away, and a cancelled or expired deadline also cancels the statement in flight
(callbacks registered with :meth:`Deadline.on_cancel`). Outside a request (the CLI, tests)
nothing is bounded unless a caller enters :func:`bounded`.

Examples
--------
>>> with bounded(Bounds(max_limit=100)):
...     current().check_limit(1000)
Traceback (most recent call last):
...
cim.errors.InvalidInput: limit 1000 is above the cap of 100 (CIM_MAX_ANALYSIS_LIMIT)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cim.errors import AnalysisCancelled, AnalysisTimeout, InvalidInput


class Deadline:
    """A time budget of ``seconds`` from now; cancellable (client gone) from another thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.cancelled: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._shields = 0
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left (negative once past)."""
        return self.ends_at - time.monotonic()

    def check(self, step: str) -> None:
        """Raise :class:`AnalysisCancelled` or :class:`AnalysisTimeout` (naming ``step``)."""
        if self.cancelled is not None:
            raise AnalysisCancelled(f"analysis stopped at {step}: {self.cancelled}")
        if self.remaining() <= 0:
            raise AnalysisTimeout(
                f"the analysis ran past its {self.seconds:g} s limit (CIM_ANALYSIS_TIMEOUT_MS)"
                f" at {step}; narrow the request (a smaller area, a lower limit) or retry later"
            )

    def cancel(self, reason: str) -> None:
        """Stop the request: the next :meth:`check` raises, the statement in flight is cancelled."""
        self.cancelled = reason
        self.interrupt()

    def interrupt(self) -> None:
        """Run the cancel callbacks (the API calls this when the time is up), unless shielded."""
        with self._lock:
            callbacks = [] if self._shields else list(self._callbacks)
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (cancel the running SQL statement) on :meth:`interrupt`; returns
        the function that unregisters it."""
        with self._lock:
            self._callbacks.append(callback)

        def unregister() -> None:
            with self._lock:
                self._callbacks.remove(callback)

        return unregister

    @property
    def is_shielded(self) -> bool:
        return self._shields > 0

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """Work the deadline must not interrupt (a shared cache fill that the next request
        would only start over); the next check or statement after it raises if time is up."""
        with self._lock:
            self._shields += 1
        try:
            yield
        finally:
            with self._lock:
                self._shields -= 1


@dataclass(frozen=True)
class Bounds:
    """The caps and deadline of one request; ``None`` = not bounded."""

    deadline: Deadline | None = None
    max_limit: int | None = None
    max_area_m2: float | None = None
    max_highlight: int | None = None

    def check_limit(self, limit: int, what: str = "limit") -> None:
        """400 when ``limit`` is above the cap."""
        if self.max_limit is not None and limit > self.max_limit:
            raise InvalidInput(
                f"{what} {limit} is above the cap of {self.max_limit} (CIM_MAX_ANALYSIS_LIMIT)"
            )

    def check_area(self, area_m2: float, what: str) -> None:
        """400 when the area examined is above the cap (m² of the storage CRS)."""
        if self.max_area_m2 is not None and not area_m2 <= self.max_area_m2:
            raise InvalidInput(
                f"{what} covers {area_m2:,.0f} m², above the cap of {self.max_area_m2:,.0f} m²"
                " (CIM_MAX_ANALYSIS_AREA_M2); split it into smaller areas"
            )

    def highlight_room(self, wanted: int) -> int:
        """How many of ``wanted`` highlighted features may be sent."""
        return wanted if self.max_highlight is None else min(wanted, self.max_highlight)


CHECK_EVERY = 4096
"""Hot loops (graph walks) check the deadline once per this many steps."""

UNBOUNDED = Bounds()
_current: ContextVar[Bounds] = ContextVar("cim_bounds", default=UNBOUNDED)


def current() -> Bounds:
    """The bounds of the request being served (:data:`UNBOUNDED` outside one)."""
    return _current.get()


def check_deadline(step: str) -> None:
    """Raise when the current request's deadline has passed or was cancelled; else nothing."""
    deadline = _current.get().deadline
    if deadline is not None:
        deadline.check(step)


@contextmanager
def shielded() -> Iterator[None]:
    """:meth:`Deadline.shielded` of the current request, if it has a deadline."""
    deadline = _current.get().deadline
    if deadline is None:
        yield
        return
    with deadline.shielded():
        yield


QUERY_CANCELED = "57014"
"""SQLSTATE of a statement cancelled (by a cancel request or the statement timeout)."""


@contextmanager
def statements_bounded(session: Session) -> Iterator[None]:
    """While the block runs, stopping the current deadline cancels ``session``'s statement in
    flight, and a statement cancelled so raises the deadline's error (503), not a database one."""
    deadline = _current.get().deadline
    if deadline is None:
        yield
        return
    connection = session.connection()
    driver = connection.connection.driver_connection
    unregister = deadline.on_cancel(driver.cancel_safe)  # type: ignore[union-attr]

    def before_statement(*_: object) -> None:  # none starts once the deadline is over
        if not deadline.is_shielded:
            deadline.check("a database query")

    event.listen(connection, "before_cursor_execute", before_statement)
    try:
        yield
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
            deadline.check("a database query")
        raise
    finally:
        event.remove(connection, "before_cursor_execute", before_statement)
        unregister()


def time_left(seconds: float) -> float:
    """``seconds``, or less when the current request's deadline comes sooner (a solver's time
    limit must end before the request's deadline)."""
    deadline = _current.get().deadline
    return seconds if deadline is None else max(0.0, min(seconds, deadline.remaining()))


def activate(bounds: Bounds) -> None:
    """Make ``bounds`` current for the rest of this context (the API's per-request task)."""
    _current.set(bounds)


@contextmanager
def bounded(bounds: Bounds) -> Iterator[Bounds]:
    """Run a block under ``bounds`` (the CLI or tests; the API uses :func:`activate`)."""
    token = _current.set(bounds)
    try:
        yield bounds
    finally:
        _current.reset(token)

"""What every request leaves behind: its id, one access log line and its metrics.

Pure ASGI and the outermost middleware (``api.setup.configure``), so it sees and times every
answer, the rate limit's 429 and the bulkhead's 503 included. The request id comes from the
caller's ``X-Request-ID`` when it is a sane token (at most 64 of ``A-Z a-z 0-9 . _ -``), else a
new uuid4; it is echoed in the ``X-Request-ID`` header of every answer, set in
:data:`cim.logs.REQUEST_ID` for the log lines and audit rows of the request, and the access
line (logger ``cim.access``) names it with the method, route template, path, status,
duration, client address and API key id (never the secret, which only ``api.auth`` sees).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.metrics import IN_FLIGHT, observe_request, sample_pools
from cim.logs import REQUEST_ID

access_log = logging.getLogger("cim.access")

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"
"""The route label of a request no route answers (404s): never the raw path."""


@dataclass
class RequestFacts:
    """What the layers inside learn about the request and the access line reports."""

    key_id: int | None = None


_facts: ContextVar[RequestFacts | None] = ContextVar("cim_request_facts", default=None)


def note_key(key_id: int | None) -> None:
    """Record the id of the API key the request presented (``api.auth.get_principal``)."""
    facts = _facts.get()
    if facts is not None:
        facts.key_id = key_id


def noted_key() -> int | None:
    """The API key id noted for the current request, if any."""
    facts = _facts.get()
    return None if facts is None else facts.key_id


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one.

    Examples
    --------
    >>> request_id_of({"headers": [(b"x-request-id", b"abc-1.2_3")]})
    'abc-1.2_3'
    >>> len(request_id_of({"headers": [(b"x-request-id", b"bad id\\n")]}))
    32
    """
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            given: str = value.decode("latin-1")
            if SANE_REQUEST_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def route_template(scope: Scope, path: str, root_path: str) -> str:
    """The path template of the route that answered (or would have: a request refused before
    routing, by the rate limit or the bulkhead, is matched here), else ``unmatched``.

    FastAPI puts its own routes in ``scope["route"]``; mounts (the viewer's files), plain
    Starlette routes (``/api``) and requests never routed are matched against the app's routes
    with the ``path`` and ``root_path`` the request came with (a mount rewrites them).
    """
    route = scope.get("route")
    if route is None:
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
        arrived = {**scope, "path": path, "root_path": root_path}
        _, route = _match(routes, arrived)
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


def _match(routes: Iterable[BaseRoute], scope: Scope) -> tuple[Match, BaseRoute | None]:
    """The first route matching ``scope`` fully, else the first partly (a 405), like the
    router; into the routers FastAPI includes (kept as ``original_router``)."""
    best: tuple[Match, BaseRoute | None] = (Match.NONE, None)
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            match, found = _match(included.routes, scope)
        else:
            match, found = route.matches(scope)[0], route
        if match is Match.FULL:
            return match, found
        if match is Match.PARTIAL and best[0] is Match.NONE:
            best = (match, found)
    return best


class RequestTelemetry:
    """Request id, access log line and request metrics of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        # Set in the request's own task and left set: the server's last-resort error handler,
        # outside this middleware, logs a crash with it.
        REQUEST_ID.set(request_id)
        facts = RequestFacts()
        _facts.set(facts)
        id_header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))
        status = 0
        started = time.perf_counter()
        path, root_path = scope["path"], scope.get("root_path", "")  # before a mount edits them

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status == 0:  # answer here so the 500 carries the id; the error handler logs it
                crash = problem(
                    500, "InternalError", "internal error; the server log has the details"
                )
                await crash(scope, receive, send_with_id)
            raise
        finally:
            IN_FLIGHT.dec()
            seconds = time.perf_counter() - started
            route = route_template(scope, path, root_path)
            self._record(scope, route, path, status or 499, seconds, facts)  # 499: client left

    def _record(
        self,
        scope: Scope,
        route: str,
        path: str,
        status: int,
        seconds: float,
        facts: RequestFacts,
    ) -> None:
        observe_request(scope["method"], route, status, seconds)
        app = scope.get("app")
        if app is not None:
            sample_pools(app.state)
        if not access_log.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        duration_ms = round(seconds * 1000, 1)
        access_log.info(
            "%s %s %s %sms",
            scope["method"],
            path,
            status,
            duration_ms,
            extra={
                "method": scope["method"],
                "route": route,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "client": client[0] if client else None,
                "key_id": facts.key_id,
            },
        )

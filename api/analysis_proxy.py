"""Analyses in processes of their own: the API workers hand every ``/analysis/`` request to a
second group of uvicorn workers that ``cim serve`` runs at a lower CPU priority on a private
Unix socket (``cli.analysis_processes``).

Why: an analysis is Python work (graph walks, pair checks, GeoJSON of thousands of features)
that holds its process's GIL for many milliseconds at a time. Run in an API worker, every items
or tile request that arrived meanwhile waited for the GIL behind it: ``bench/load.py`` gave
items p99 0.5 s with burst isolations in the mix and 0.16 s without. In a niced process of its
own the kernel's scheduler, not the GIL, shares the cores, and the fast requests go first.

What stays in the API worker: request id, access line and metrics, the anonymous rate limit,
the bulkhead lanes (refusals stay immediate, and each API worker admits only its lanes' share)
and the body size limit. What moves: everything the route does - authentication, audit, the
deadline, the database work. The caller's address travels in ``X-Cim-Client``, which the
analysis processes trust because only this service's user can reach their socket (mode 0600);
the request id travels in ``X-Request-ID``; the API key id comes back in ``X-Cim-Key-Id`` for
the access line. A client that leaves closes the upstream connection, and the analysis
process cancels the request's deadline as it did before (``api.bounds``). An unreachable
analysis group is a 503 with ``Retry-After``, never a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator

import anyio
import httpx
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.telemetry import REQUEST_ID_HEADER, note_key, noted_key
from cim.logs import REQUEST_ID

logger = logging.getLogger("cim.api.analyses")

ANALYSIS_PREFIX = "/analysis/"
CLIENT_HEADER = b"x-cim-client"
KEY_HEADER = b"x-cim-key-id"
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"host",
    }
)
"""Headers of one connection, not of the request: never passed on (RFC 9110 7.6.1)."""
RETRY_AFTER_S = 5
CONNECT_WAIT_S = 5.0
"""How long a request waits for an analysis process that is being replaced."""
START_WAIT_S = 120.0
"""How long an API worker's startup waits for the analysis processes' first answer."""


def is_analysis(scope: Scope) -> bool:
    """True for an HTTP request to one of the ``/analysis/`` routes (after a mount's prefix)."""
    return scope["type"] == "http" and app_path(scope).startswith(ANALYSIS_PREFIX)


def app_path(scope: Scope) -> str:
    """The request's path as the app's own routes see it (a mount's ``root_path`` removed)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class AnalysisProcesses:
    """In an API worker: forward ``/analysis/`` requests to the analysis processes' socket."""

    def __init__(self, app: ASGIApp, socket_path: str, answer_timeout_s: float) -> None:
        self.app = app
        self.socket_path = socket_path
        # Nothing flows while an analysis runs: the read timeout is the analysis deadline
        # (enforced over there) plus a margin, so only a hung analysis process trips it.
        self.timeout = httpx.Timeout(answer_timeout_s, connect=5.0)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    def _client(self) -> httpx.AsyncClient:
        """One client per event loop (one per uvicorn worker; test clients make their own)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            transport = httpx.AsyncHTTPTransport(
                uds=self.socket_path,
                # a connection per request: the kernel hands each to an idle analysis worker
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            client = httpx.AsyncClient(transport=transport, timeout=self.timeout)
            self._clients[loop] = client
        return client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_analysis(scope):
            await self.app(scope, receive, send)
            return
        body_read = anyio.Event()
        async with anyio.create_task_group() as tasks:

            async def watch_for_disconnect() -> None:
                await body_read.wait()
                while (await receive())["type"] != "http.disconnect":
                    pass
                tasks.cancel_scope.cancel()  # closes the upstream connection: it cancels too

            tasks.start_soon(watch_for_disconnect)
            with contextlib.suppress(ClientDisconnect):  # gone while sending its body
                await self._forward(scope, _body(receive, body_read), send)
            tasks.cancel_scope.cancel()

    async def _forward(self, scope: Scope, body: AsyncIterator[bytes], send: Send) -> None:
        request = self._client().build_request(
            scope["method"],
            "http://analyses" + app_path(scope),
            params=scope.get("query_string", b"").decode("latin-1") or None,
            headers=_request_headers(scope),
            content=body,
        )
        response = await self._send(request)
        if response is None:
            await _unavailable(scope, send)
            return
        try:
            key = response.headers.get("x-cim-key-id")
            if key and key.isdigit():
                note_key(int(key))
            headers = [
                (name, value)
                for name, value in response.headers.raw
                if name.lower() not in HOP_BY_HOP
                and name.lower() not in (KEY_HEADER, REQUEST_ID_HEADER)
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _send(self, request: httpx.Request) -> httpx.Response | None:
        """The analysis processes' answer (headers; the body follows); None when unreachable.

        A refused connection is tried again for a few seconds: the group starts beside the
        API workers and uvicorn replaces a dead worker, and a request in that gap waits.
        """
        deadline = asyncio.get_running_loop().time() + CONNECT_WAIT_S
        while True:
            try:
                return await self._client().send(request, stream=True)
            except httpx.ConnectError as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    logger.warning("analysis processes unreachable: %s", exc)
                    return None
                await asyncio.sleep(0.1)
            except httpx.TransportError as exc:
                logger.warning("analysis processes failed: %s", exc)
                return None


async def wait_for_analysis_processes(socket_path: str, timeout_s: float = START_WAIT_S) -> None:
    """Wait until an analysis process answers on ``socket_path`` (any HTTP answer), at most
    ``timeout_s`` (then a warning, and analyses answer 503 until the group is up).

    Called by each API worker's startup: the group starts beside the API workers, and on a
    loaded machine it may take longer than the API to import the app. Without the wait, the
    first analyses after a start were 503s although nothing had failed (CI saw it). uvicorn
    binds the socket of a multi-worker group before its workers are ready, so a connection
    alone proves nothing: the wait is for an answer.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    transport = httpx.AsyncHTTPTransport(uds=socket_path)
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        while True:
            try:
                await client.get("http://analyses/health")
                return
            except httpx.TransportError:
                if loop.time() >= deadline:
                    logger.warning("analysis processes not answering after %.0f s", timeout_s)
                    return
                await asyncio.sleep(0.1)


async def _body(receive: Receive, done: anyio.Event) -> AsyncIterator[bytes]:
    """The request body as it arrives; ``done`` is set once it has all been read."""
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
    finally:
        done.set()


def _request_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The caller's headers without hop-by-hop ones, with the resolved client and request id."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in HOP_BY_HOP
        and name not in (CLIENT_HEADER, KEY_HEADER, REQUEST_ID_HEADER, b"content-length")
    ]
    client = scope.get("client")
    if client:
        headers.append((CLIENT_HEADER, str(client[0]).encode("latin-1")))
    request_id = REQUEST_ID.get()
    if request_id:
        headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
    return headers


async def _unavailable(scope: Scope, send: Send) -> None:
    answer = problem(
        503,
        "AnalysesUnavailable",
        "the analysis processes are not answering (starting or restarting); retry shortly",
        {"Retry-After": str(RETRY_AFTER_S)},
    )

    async def no_receive() -> Message:  # the body was streamed (or refused) already
        return {"type": "http.disconnect"}

    await answer(scope, no_receive, send)


class FromApiWorker:
    """In an analysis process: take the caller's address from ``X-Cim-Client`` (only API
    workers reach this socket) and report the API key id in ``X-Cim-Key-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == CLIENT_HEADER:
                scope = {**scope, "client": (value.decode("latin-1"), 0)}

        async def send_with_key(message: Message) -> None:
            if message["type"] == "http.response.start":
                key = noted_key()
                if key is not None:
                    extra = (KEY_HEADER, str(key).encode("latin-1"))
                    message = {**message, "headers": [*message.get("headers", ()), extra]}
            await send(message)

        await self.app(scope, receive, send_with_key)

"""Per-address rate limit of anonymous callers: a token bucket per client address in process
memory; beyond it 429 problem+json with ``Retry-After``. Callers with a valid API key, and the
static tile, terrain and Cesium files, are exempt.

Pure ASGI, in front of every route. A presented key is looked up once (one indexed read of
``api_key``; its validity, valid or not, is then remembered ``CIM_API_KEY_CACHE_SECONDS``, so a
revoked key keeps its exemption that long); an unknown or revoked key is charged to its address
like an anonymous caller, so inventing keys does not escape the limit. Whether a key may do what
it asks is still decided by the route, on every request.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field

import anyio
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import problem
from api.metrics import count_shed
from cim.errors import AuthenticationRequired
from cim.services.access import authenticate, hash_secret

STATIC_FILES = re.compile(
    r"/(tiles/(?!restricted/)[^/]+/.+|terrain/(layer\.json|\d+/\d+/\d+\.terrain)|viewer/cesium/.+)"
)
"""Built files a 3D viewer fetches by the hundred (tiles, terrain, the Cesium build): served
without the database or a worker thread, so they are not charged (restricted tiles are)."""
MAX_TRACKED = 100_000
"""Addresses (and keys) remembered at most; past it the idle entries are dropped."""


@dataclass
class TokenBuckets:
    """``per_minute`` requests per minute and key, in bursts of up to a minute's worth."""

    per_minute: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, at
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0 when allowed, else the seconds until the next one."""
        now = time.monotonic()
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / rate
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_idle(now)
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that have filled up again (they behave like new ones)."""
        full_after = 60.0
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


@dataclass
class KeyValidity:
    """Whether a presented API key is valid, remembered ``ttl_s`` seconds per key."""

    ttl_s: float
    _known: dict[str, tuple[bool, float]] = field(default_factory=dict)

    def get(self, secret: str) -> bool | None:
        known = self._known.get(hash_secret(secret))
        if known is None or known[1] < time.monotonic():
            return None
        return known[0]

    def put(self, secret: str, valid: bool) -> None:
        if len(self._known) >= MAX_TRACKED:
            self._known.clear()
        self._known[hash_secret(secret)] = (valid, time.monotonic() + self.ttl_s)


def key_is_valid(engine: Engine, secret: str) -> bool:
    """Look the key up (the session is never committed: nothing is written)."""
    with Session(engine) as session:
        try:
            authenticate(session, secret=secret)
        except AuthenticationRequired:
            return False
        return True


def presented_key(scope: Scope) -> str | None:
    """The secret of ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    for name, value in scope.get("headers", []):
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip() or None
    return None


def is_static_file(scope: Scope) -> bool:
    """Whether the request reads one of the :data:`STATIC_FILES`."""
    return scope["method"] in ("GET", "HEAD") and STATIC_FILES.fullmatch(scope["path"]) is not None


def is_exempt(scope: Scope) -> bool:
    """Static files, and ``/metrics`` (a scraper polls it; it answers only loopback callers and
    admin keys, and refuses anonymous others at no database cost)."""
    return scope["path"] == "/metrics" or is_static_file(scope)


class AnonymousRateLimit:
    """Charge anonymous requests to their address's bucket; 429 + Retry-After when empty."""

    def __init__(self, app: ASGIApp, per_minute: int, key_cache_seconds: float) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute)
        self.keys = KeyValidity(key_cache_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.buckets.per_minute == 0 or is_exempt(scope):
            await self.app(scope, receive, send)
            return
        secret = presented_key(scope)
        if secret is None or not await self._valid(scope, secret):
            client = scope.get("client")
            wait = self.buckets.take(client[0] if client else "unknown")
            if wait > 0:
                await self._refuse(scope, receive, send, wait)
                return
        await self.app(scope, receive, send)

    async def _valid(self, scope: Scope, secret: str) -> bool:
        """Whether ``secret`` is a valid key (remembered); a database error says no."""
        known = self.keys.get(secret)
        if known is not None:
            return known
        if len(secret) > 256:
            return False
        engine: Engine = scope["app"].state.engine
        try:
            valid = await anyio.to_thread.run_sync(key_is_valid, engine, secret)
        except SQLAlchemyError:
            return False
        self.keys.put(secret, valid)
        return valid

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, wait: float) -> None:
        per_minute = self.buckets.per_minute
        count_shed("rate_limit")
        response = problem(
            429,
            "TooManyRequests",
            f"more than {per_minute} requests per minute from this address without an API key "
            "(CIM_ANONYMOUS_RATE_PER_MINUTE); retry later or use an API key",
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )
        await response(scope, receive, send)

"""Hear alarm changes from PostgreSQL (``LISTEN``) in one thread and hand them to subscribers.

One connection per process listens on :data:`alarm_events.CHANNEL`; every notification is
decoded once and passed to each subscriber callback (the SSE streams of the API register one
each). A lost connection is reopened after a short pause; changes committed meanwhile are not
replayed (a client catches up with ``GET /alarms?since=``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from cim.services.sensors.alarm_events import CHANNEL

logger = logging.getLogger("cim.sensors.alarms")
Subscriber = Callable[[dict[str, Any]], None]
RECONNECT_SECONDS = 1.0


class AlarmListener:
    """``LISTEN`` on the alarm channel in a daemon thread; ``subscribe`` to hear changes."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._subscribers: dict[int, Subscriber] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cim-alarm-listener", daemon=True)

    def start(self, wait: float = 1.0) -> None:
        """Start listening; returns once the ``LISTEN`` is in place (or after ``wait``)."""
        self._thread.start()
        self._listening.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every alarm document; returns the function that unsubscribes."""
        key = id(callback)
        with self._lock:
            self._subscribers[key] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self._dispatch(notice.payload)
            except psycopg.Error as exc:
                logger.warning("alarm listener lost the database (%s); retrying", exc)
                self._stop.wait(RECONNECT_SECONDS)

    def _dispatch(self, payload: str) -> None:
        try:
            document = json.loads(payload)
        except ValueError:
            return
        with self._lock:
            callbacks = list(self._subscribers.values())
        for callback in callbacks:
            callback(document)

"""Tell endless responses (the alarm stream) that the server is stopping, so it can stop.

uvicorn's graceful shutdown stops accepting, then waits for every open response to finish; it
does not tell the application. A Server-Sent Events stream never finishes by itself, so one
control-room screen left open kept ``cim serve`` from exiting on SIGTERM until it was killed
(and ``systemctl restart`` waited for its kill timeout). uvicorn handles SIGTERM/SIGINT with
``signal.signal`` in the main thread before the lifespan starts; :func:`watch_for_shutdown`
wraps that handler so that it also sets an event the streams wait on, then calls uvicorn's.
The streams end (the browser's EventSource reconnects after its ``retry`` delay, to the next
server), and the shutdown goes on with the ordinary requests as before.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)


def watch_for_shutdown(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """An event set when the process is asked to stop; never set outside the main thread
    (the test client runs the app in another thread, where signals cannot be caught)."""
    stopping = asyncio.Event()
    if threading.current_thread() is not threading.main_thread():
        return stopping
    for sig in HANDLED:
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue  # default or ignored: not uvicorn's; leave it

        def handler(number: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(stopping.set)
            previous(number, frame)

        signal.signal(sig, handler)
    return stopping

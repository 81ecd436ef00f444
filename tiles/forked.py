"""Rendering a large layer's content tiles in several processes of this machine.

Why: meshing and encoding a tile is numpy on small arrays plus Python glue, so the local
renderer (:func:`tiles.write.render_here`) keeps one core busy whatever its threads do (the
GIL), while the other cores wait; on the 1M-building bench city that was ~35 s of a ~50 s
build. Here the batches of tiles are dealt round-robin to this process and to forked
children, each with its own database connection, rendering and writing its share into the same
staged folder. A tile's bytes depend only on its own rows, so the files are the ones a single
process writes (a test compares them byte for byte).

Forked, not spawned: a child inherits the layer's index, tree and frames (hundreds of MB at
city scale) without pickling them, and starts in milliseconds. It takes a connection of its
own (the parent's stays the parent's: psycopg does not close a connection it inherited) and
dies with its parent (``PR_SET_PDEATHSIG``): a killed build leaves no child writing into a
staged folder. Small layers stay in one process (a fork and a connection cost more than they
save); ``CIM_TILES_PROCESSES`` sets the number of processes (1: never fork).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import Any, TypeVar

from sqlalchemy import Engine

from cim.errors import InvalidInput, TilingError
from cim.processes import die_with_parent
from tiles.render import Progress, TileOutput

FORK_MIN_TRIANGLES = 4_000_000
"""Below this many triangles a layer is rendered in one process (~2 s of work on one core)."""
PROCESSES_VARIABLE = "CIM_TILES_PROCESSES"

Group = TypeVar("Group")
RenderPart = Callable[[Any, Sequence[Group], Progress | None], list[TileOutput]]
"""Renders some batches on a psycopg connection, reporting (features done, total) of them."""


def processes_for(triangles: int) -> int:
    """How many processes render a layer of ``triangles``: ``CIM_TILES_PROCESSES`` when set,
    else one per core (at most 4) for a layer of at least :data:`FORK_MIN_TRIANGLES`.

    Examples
    --------
    >>> os.environ.pop(PROCESSES_VARIABLE, None) and None
    >>> processes_for(1_000)
    1
    """
    chosen = os.environ.get(PROCESSES_VARIABLE, "").strip()
    if chosen:
        count = int(chosen) if chosen.isdigit() else 0
        if count < 1:
            raise InvalidInput(f"{PROCESSES_VARIABLE} must be a whole number >= 1, not {chosen!r}")
    elif triangles < FORK_MIN_TRIANGLES:
        return 1
    else:
        count = min(os.cpu_count() or 1, 4)
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return count


def render_forked(
    engine: Engine,
    connection: Any,
    groups: Sequence[Group],
    render_part: RenderPart[Group],
    processes: int,
    progress: Progress | None,
    total: int,
) -> list[TileOutput]:
    """``render_part`` over ``groups`` dealt round-robin to this process (on ``connection``)
    and ``processes - 1`` forked children (each on a new connection of ``engine``); the
    outputs of every tile, this process's first. A child's failure is a :class:`TilingError`
    as soon as this process hears of it (between its own tiles); the children are killed if
    this process fails."""
    context = multiprocessing.get_context("fork")
    shares = [list(groups[k::processes]) for k in range(processes)]
    done = [0] * processes
    children: list[Any] = []
    pipes: dict[Pipe, int] = {}  # the children's, until each has sent its outputs
    receivers: list[Pipe] = []
    theirs: list[TileOutput] = []

    def hear(block: bool) -> None:
        """Take the children's messages: progress, outputs or failure (waiting for one if
        ``block``; a child's progress is read while this process renders its own share, so
        its pipe never fills and stalls it)."""
        for ready in wait(list(pipes), timeout=None if block else 0):
            assert isinstance(ready, Pipe)
            while ready in pipes:  # every message that has come (a pipe's last is "done")
                try:
                    kind, value = ready.recv()
                except EOFError:
                    raise TilingError("a tile rendering process died") from None
                if kind == "progress":
                    done[pipes[ready]] = value
                elif kind == "done":
                    theirs.extend(value)
                    del pipes[ready]
                else:
                    raise TilingError(f"a tile rendering process failed: {value}")
                if not ready.poll():
                    break

    def tell() -> None:
        if progress is not None:
            progress(sum(done), total)

    def mine(features: int, _: int) -> None:
        done[0] = features
        hear(block=False)
        tell()

    try:
        for position, share in enumerate(shares[1:], start=1):
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(
                target=_child,
                args=(engine, render_part, share, sender, os.getpid()),
                daemon=True,
            )
            child.start()
            sender.close()
            pipes[receiver] = position
            receivers.append(receiver)
            children.append(child)
        outputs = render_part(connection, shares[0], mine)
        while pipes:
            hear(block=True)
            tell()
        for child in children:
            child.join()
        return outputs + theirs
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
        for receiver in receivers:
            receiver.close()


def _child(
    engine: Engine, render_part: RenderPart[Group], share: list[Group], pipe: Pipe, parent: int
) -> None:
    """A forked child: render ``share`` on a connection of its own, send the outputs."""
    if not die_with_parent(signal.SIGKILL, parent):  # the parent died before it was armed
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it kills us
    engine.dispose(close=False)  # the inherited pool's connections are the parent's
    try:
        with engine.connect() as sa_connection:
            connection: Any = sa_connection.connection.driver_connection
            outputs = render_part(
                connection, share, lambda features, _: pipe.send(("progress", features))
            )
            connection.rollback()
        pipe.send(("done", outputs))
    except Exception as exc:  # any failure: the parent raises it as a TilingError
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()

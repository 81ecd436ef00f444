"""``/alarms``: alarm rules (admin), alarms with their lifecycle, and the live SSE stream.

Alarms of things whose utility class is hidden from the caller (gas ``RQ`` and power ``DL``
for anonymous callers) are not there — in the list, by id, and on the stream. Acknowledging
and clearing need an analyst or admin key and are audited, as rule changes are.
``GET /alarms/stream`` is Server-Sent Events: one ``alarm`` event per change (raised,
escalated, acknowledged, cleared), heard from PostgreSQL ``NOTIFY`` as the change commits in
any process, so a client sees it within a second; a comment every 15 s keeps proxies open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api.auth import AdminDep, AnalystDep, HiddenDep, PrincipalDep, client_address
from api.deps import SessionDep
from api.ogc import PROBLEMS
from api.sessions import ReleasingRoute
from cim.services.access import Principal, audit, require_role
from cim.services.sensors import alarms
from cim.services.sensors.alarms import AlarmAnswer, RuleAnswer, RuleInput

router = APIRouter(route_class=ReleasingRoute, tags=["alarms"], responses=PROBLEMS)
AlarmId = Annotated[int, Path(ge=1, le=2**62, description="Alarm id")]
RuleId = Annotated[int, Path(ge=1, le=2**62, description="Rule id")]
KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 1000


def _who(principal: Principal) -> str:
    return f"{principal.name} (key {principal.key_id})"


def _audit(
    session: SessionDep, request: Request, principal: Principal, action: str, what: str
) -> None:
    audit(
        session, principal=principal, action=action, resource=what, client=client_address(request)
    )


@router.get("/alarms/rules", summary="List alarm rules")
def list_rules(session: SessionDep, principal: PrincipalDep) -> list[RuleAnswer]:
    """Every rule (any API key)."""
    require_role(principal, "reader")
    return alarms.list_rules(session)


@router.post("/alarms/rules", status_code=status.HTTP_201_CREATED, summary="Create an alarm rule")
def create_rule(
    request: Request, rule: RuleInput, session: SessionDep, principal: AdminDep
) -> RuleAnswer:
    """A threshold, rate-of-change or missing-data rule on a datastream or an observed property."""
    created = alarms.create_rule(session, rule)
    _audit(session, request, principal, "create", f"alarms/rules/{created.id}")
    return created


@router.get("/alarms/rules/{rule_id}", summary="One alarm rule")
def get_rule(rule_id: RuleId, session: SessionDep, principal: PrincipalDep) -> RuleAnswer:
    require_role(principal, "reader")
    return alarms.get_rule(session, rule_id)


@router.put("/alarms/rules/{rule_id}", summary="Replace an alarm rule")
def replace_rule(
    request: Request, rule_id: RuleId, rule: RuleInput, session: SessionDep, principal: AdminDep
) -> RuleAnswer:
    replaced = alarms.replace_rule(session, rule_id, rule)
    _audit(session, request, principal, "update", f"alarms/rules/{rule_id}")
    return replaced


@router.delete(
    "/alarms/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a rule"
)
def delete_rule(
    request: Request, rule_id: RuleId, session: SessionDep, principal: AdminDep
) -> Response:
    """Delete a rule and its alarms (disable it instead to keep the history)."""
    alarms.delete_rule(session, rule_id)
    _audit(session, request, principal, "delete", f"alarms/rules/{rule_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/alarms", summary="List alarms")
def list_alarms(
    session: SessionDep,
    hidden: HiddenDep,
    state: Annotated[Literal["open", "raised", "acknowledged", "cleared"] | None, Query()] = None,
    level: Annotated[Literal["notice", "warning", "alarm"] | None, Query()] = None,
    datastream_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    rule_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    since: Annotated[datetime | None, Query(description="Changed at or after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=alarms.MAX_ALARMS)] = 100,
) -> list[AlarmAnswer]:
    """Alarms, newest first; ``state=open`` is raised or acknowledged."""
    return alarms.list_alarms(
        session,
        hidden=hidden,
        state=state,
        level=level,
        datastream_id=datastream_id,
        rule_id=rule_id,
        since=since,
        limit=limit,
    )


def _event(document: dict[str, Any]) -> str:
    return f"event: alarm\nid: {document['id']}\ndata: {json.dumps(document)}\n\n"


async def _events(request: Request, hidden: frozenset[str]) -> AsyncIterator[str]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
    loop = asyncio.get_running_loop()

    def deliver(document: dict[str, Any]) -> None:
        if document.get("utility") not in hidden:
            loop.call_soon_threadsafe(_offer, queue, document)

    # done when the server is asked to stop (api.draining): the stream ends, the client reconnects
    stop = asyncio.ensure_future(request.app.state.stopping.wait())
    unsubscribe = request.app.state.sensors.listener.subscribe(deliver)
    try:
        yield "retry: 1000\n: listening for alarm changes\n\n"
        while not stop.done() and not await request.is_disconnected():
            waiting = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {waiting, stop}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if waiting in done:
                yield _event(waiting.result())
                continue
            waiting.cancel()  # the queue keeps an event that came meanwhile
            if not done:
                yield ": keepalive\n\n"
    finally:
        stop.cancel()
        unsubscribe()


def _offer(queue: asyncio.Queue[dict[str, Any]], document: dict[str, Any]) -> None:
    if not queue.full():  # a client that stopped reading loses events, not the server memory
        queue.put_nowait(document)


@router.get(
    "/alarms/stream",
    summary="Alarm changes as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(request: Request, hidden: HiddenDep) -> StreamingResponse:
    """``event: alarm`` with the alarm document and its ``event`` (raised, escalated,
    acknowledged, cleared) on every change, as it commits."""
    return StreamingResponse(
        _events(request, hidden),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/alarms/{alarm_id}", summary="One alarm")
def get_alarm(alarm_id: AlarmId, session: SessionDep, hidden: HiddenDep) -> AlarmAnswer:
    return alarms.get_alarm(session, alarm_id, hidden)


@router.post("/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm")
def acknowledge(
    request: Request, alarm_id: AlarmId, session: SessionDep, principal: AnalystDep
) -> AlarmAnswer:
    """raised -> acknowledged, with who and when (analyst or admin)."""
    answer = alarms.acknowledge(session, alarm_id, by=_who(principal))
    _audit(session, request, principal, "acknowledge", f"alarms/{alarm_id}")
    return answer


@router.post("/alarms/{alarm_id}/clear", summary="Clear an alarm")
def clear(
    request: Request, alarm_id: AlarmId, session: SessionDep, principal: AnalystDep
) -> AlarmAnswer:
    """-> cleared, with who and when (analyst or admin); the rule may raise again."""
    answer = alarms.clear(session, alarm_id, by=_who(principal))
    _audit(session, request, principal, "clear", f"alarms/{alarm_id}")
    return answer

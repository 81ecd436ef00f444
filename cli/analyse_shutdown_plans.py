"""``cim analyse pipes shutdowns add|list|conflicts|cancel``: planned shutdowns (计划停水).

Registered on the ``cim analyse pipes`` group by ``cli/analyse.py``. Times are ISO 8601 with a
time zone (``2026-12-07T08:00+08:00``). Prints short text, or the JSON the API sends with
``--json``.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from cli.context import emit, session_scope

if TYPE_CHECKING:
    from cim.services.simulation.shutdown_plan_models import ShutdownConflict, ShutdownPlan

app = typer.Typer(
    help="Planned shutdowns (计划停水): store with their ring, list, conflicts, cancel.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _time(value: str, option: str) -> datetime:
    """An ISO 8601 time (the service refuses one without a zone)."""
    from cim.errors import InvalidInput

    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {value!r} is not an ISO 8601 time") from None


def _moment(value: str | None, option: str) -> datetime | None:
    return None if value is None else _time(value, option)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


@app.command("add")
def add(
    dataset: Annotated[int, typer.Option("--dataset", help="Water dataset id.")],
    title: Annotated[str, typer.Option(help="What the shutdown is for.")],
    start: Annotated[str, typer.Option("--from", help="Start, ISO 8601 with a zone.")],
    end: Annotated[str, typer.Option("--to", help="End, ISO 8601 with a zone.")],
    segment: Annotated[int | None, typer.Option(help="Work segment id: isolate it.")] = None,
    failed: Annotated[
        list[int] | None, typer.Option("--failed", help="Stuck valve node id (repeatable).")
    ] = None,
    valve: Annotated[
        list[int] | None, typer.Option("--valve", help="Valve node id to close (repeatable).")
    ] = None,
    pipe: Annotated[
        list[int] | None, typer.Option("--pipe", help="Segment id to close (repeatable).")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who plans it (default cli:USER).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Store a planned shutdown: close a work segment's isolation valves (or given valves and
    pipes) for the period; print the ring it cuts off and its conflicts with stored plans."""
    from cim.services.simulation.shutdown_plans import store_plan

    with session_scope() as session:
        stored = store_plan(
            session,
            dataset_id=dataset,
            title=title,
            starts_at=_time(start, "--from"),
            ends_at=_time(end, "--to"),
            segment_id=segment,
            failed_valve_ids=failed,
            valve_ids=valve,
            segment_ids=pipe,
            created_by=by or _who(),
        )
    lines = [plan_line(stored.plan)]
    impact = stored.plan.impact
    if impact is not None:
        lines.append(
            f"  cut off: {impact.isolated_nodes} node(s); below service pressure beyond: "
            f"{impact.below_service_nodes}; demand not served over {impact.duration_h:g} h: "
            f"{impact.not_served_m3:,.1f} m³ ({impact.not_served_percent:.2f} %)"
        )
    lines.append(f"conflicts: {len(stored.conflicts)}")
    lines += [conflict_line(c) for c in stored.conflicts]
    emit(stored.model_dump(mode="json"), as_json=as_json, text="\n".join(lines))


@app.command("list")
def list_command(
    dataset: Annotated[int | None, typer.Option("--dataset", help="Dataset id.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Active at this time.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Overlapping from.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Overlapping to.")] = None,
    cancelled: Annotated[bool, typer.Option("--cancelled", help="Include cancelled.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Planned shutdowns by start time (active at --at, or overlapping --from/--to)."""
    from cim.services.simulation.shutdown_plans import list_plans

    with session_scope() as session:
        found = list_plans(
            session,
            dataset_id=dataset,
            at=_moment(at, "--at"),
            start=_moment(start, "--from"),
            end=_moment(end, "--to"),
            include_cancelled=cancelled,
        )
    text = "\n".join(plan_line(p) for p in found.plans) or "no planned shutdowns"
    emit(found.model_dump(mode="json"), as_json=as_json, text=text)


@app.command("conflicts")
def conflicts(
    dataset: Annotated[int | None, typer.Option("--dataset", help="Dataset id.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Pairs of planned shutdowns active at once on a shared part of the network."""
    from cim.services.simulation.shutdown_plans import plan_conflicts

    with session_scope() as session:
        found = plan_conflicts(session, dataset_id=dataset)
    text = "\n".join(conflict_line(c) for c in found.conflicts) or "no conflicts"
    emit(found.model_dump(mode="json"), as_json=as_json, text=text)


@app.command("cancel")
def cancel(
    plan: Annotated[int, typer.Argument(help="Shutdown plan id.")], as_json: JsonOption = False
) -> None:
    """Cancel a planned shutdown (kept with status cancelled; it no longer conflicts)."""
    from cim.services.simulation.shutdown_plans import cancel_plan

    with session_scope() as session:
        found = cancel_plan(session, plan)
    emit(found.model_dump(mode="json"), as_json=as_json, text=plan_line(found))


def plan_line(plan: ShutdownPlan) -> str:
    """One line per plan: id, status, period, title, what it closes and cuts off."""
    return (
        f"plan {plan.id} [{plan.status}] dataset {plan.dataset_id} "
        f"{plan.starts_at.isoformat()} -> {plan.ends_at.isoformat()} {plan.title!r}: "
        f"{len(plan.valve_ids)} valve(s), {len(plan.segment_ids)} pipe(s) closed; ring "
        f"{len(plan.ring_segment_ids)} segment(s), {plan.ring_length_m:,.1f} m"
    )


def conflict_line(conflict: ShutdownConflict) -> str:
    """One line per conflict: the plans, when both are active, what they share."""
    first, second = conflict.plan_ids
    return (
        f"  plans {first} and {second} ({conflict.titles[0]!r}, {conflict.titles[1]!r}) "
        f"{conflict.overlap_from.isoformat()} -> {conflict.overlap_to.isoformat()}: "
        f"{len(conflict.shared_segment_ids)} segment(s), {len(conflict.shared_node_ids)} "
        f"node(s) shared, {len(conflict.valves_in_other_ring)} valve(s) on the other's ring"
    )

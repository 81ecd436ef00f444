"""Typed answers of planned shutdowns (计划停水): a stored plan, its conflicts, the lists."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from cim.services.results import Result


class ShutdownPlanImpact(Result):
    """The shutdown simulation's summary when the plan was stored (over ``duration_h``)."""

    duration_h: float
    isolated_nodes: int  # demand nodes cut off from every tank and reservoir
    below_service_nodes: int  # beyond the ring: above service pressure before, below after
    affected_beyond_count: int
    not_served_m3: float
    not_served_percent: float


class ShutdownPlan(Result):
    """One planned shutdown: when, what it closes and the ring it cuts off."""

    id: int
    dataset_id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    status: Literal["planned", "cancelled"]
    valve_ids: list[int]  # valve nodes closed
    segment_ids: list[int]  # pipes closed
    ring_segment_ids: list[int]  # segments cut off from every source, and the closed pipes
    ring_node_ids: list[int]  # nodes of those segments (closed valves at the edge included)
    ring_length_m: float
    impact: ShutdownPlanImpact | None
    created_by: str | None
    created_at: datetime


class ShutdownConflict(Result):
    """Two plans of one dataset, both planned, active at once on a shared part of the network."""

    dataset_id: int
    plan_ids: tuple[int, int]  # lower id first
    titles: tuple[str, str]
    overlap_from: datetime
    overlap_to: datetime
    shared_segment_ids: list[int]  # in both rings
    shared_node_ids: list[int]  # in both rings
    valves_in_other_ring: list[int]  # valves one plan closes on the other's ring


class StoredShutdownPlan(Result):
    """A plan just stored and its conflicts with the plans stored before it."""

    plan: ShutdownPlan
    conflicts: list[ShutdownConflict]


class ShutdownPlanList(Result):
    """Plans, by start time then id."""

    plans: list[ShutdownPlan]


class ShutdownConflictList(Result):
    """Every conflict between the planned shutdowns (of one dataset, or of all)."""

    conflicts: list[ShutdownConflict]

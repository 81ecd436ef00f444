"""Realistic observation values for the demo and the benches (``cim simulate sensors``).

Each datastream gets a profile from its observed property (the seeded lifeline properties of
migration 0008, else a generic one): a base value, a daily pattern and noise, e.g. flow with
morning and evening peaks, pipe pressure dipping when flow peaks, a water level with a slow
swing, near-zero methane. One methane datastream can carry an injected leak: from ``start``
seconds into the run its value ramps linearly to ``peak`` %LEL over ``ramp`` seconds and stays
there — enough to cross the usual alarm levels (GB/T 50493: level 1 <= 25 %LEL, level 2
<= 50 %LEL) in order.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.models.sensor import OBSERVATION_TYPES

DAY_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Profile:
    """Base value, daily amplitude (shape ``pattern``), noise (standard deviation), floor."""

    base: float
    amplitude: float
    noise: float
    pattern: str = "sine"  # sine | peaks | inverse-peaks
    floor: float | None = 0.0
    digits: int = 2


PROFILES = {
    "gas-concentration-lel": Profile(0.8, 0.3, 0.25, floor=0.0),
    "Pressure": Profile(350.0, 25.0, 2.0, "inverse-peaks"),
    "VolumeFlowRate": Profile(120.0, 80.0, 6.0, "peaks"),
    "water-level": Profile(0.45, 0.15, 0.02),
    "Temperature": Profile(72.0, 4.0, 0.5),
    "Displacement": Profile(0.0, 0.2, 0.05, floor=None),
}
GENERIC = Profile(10.0, 2.0, 0.5, floor=None)


@dataclass(frozen=True, slots=True)
class FeedStream:
    """A datastream the feed publishes to."""

    datastream_id: int
    name: str
    profile: Profile
    methane: bool


@dataclass(frozen=True, slots=True)
class Leak:
    """A leak ramp on one datastream: from ``start`` s, to ``peak`` over ``ramp`` s."""

    datastream_id: int
    start: float
    ramp: float
    peak: float

    def value(self, elapsed: float, normal: float) -> float:
        if elapsed < self.start:
            return normal
        share = min(1.0, (elapsed - self.start) / self.ramp) if self.ramp > 0 else 1.0
        return normal + share * (self.peak - normal)


def profile_for(definition: str) -> Profile:
    """The profile of an observed property definition (URI or URN)."""
    for key, profile in PROFILES.items():
        if definition.endswith(key):
            return profile
    return GENERIC


def daily(pattern: str, moment: datetime) -> float:
    """Shape of the day in [-1, 1] at ``moment``'s hour (local time of the timestamps)."""
    hours = (moment.hour * 3600 + moment.minute * 60 + moment.second) / 3600
    if pattern == "sine":
        return math.sin(2 * math.pi * (hours - 9) / 24)
    # water demand: peaks around 07:30 and 19:30, low at night
    peaks = math.exp(-((hours - 7.5) ** 2) / 2) + math.exp(-((hours - 19.5) ** 2) / 3)
    shaped = 2 * min(1.0, peaks) - 1
    return -shaped if pattern == "inverse-peaks" else shaped


def value(profile: Profile, moment: datetime, rng: random.Random) -> float:
    """One observation value: base + daily pattern + noise, above the floor."""
    found = (
        profile.base
        + profile.amplitude * daily(profile.pattern, moment)
        + rng.gauss(0, profile.noise)
    )
    if profile.floor is not None:
        found = max(profile.floor, found)
    return round(found, profile.digits)


def load_streams(session: Session, limit: int | None = None) -> list[FeedStream]:
    """The numeric (OM_Measurement) datastreams of the database, in id order."""
    rows = session.execute(
        text(
            "SELECT d.id, d.name, p.definition FROM sensor_datastream d"
            " JOIN sensor_observed_property p ON p.id = d.observed_property_id"
            " WHERE d.observation_type = :measurement ORDER BY d.id LIMIT :limit"
        ),
        {"measurement": OBSERVATION_TYPES["OM_Measurement"], "limit": limit},
    )
    return [
        FeedStream(int(r.id), r.name, profile_for(r.definition), r.definition.endswith("lel"))
        for r in rows
    ]


def pick_leak(streams: list[FeedStream], start: float, ramp: float, peak: float) -> Leak | None:
    """The leak on the first methane datastream, if there is one."""
    for stream in streams:
        if stream.methane:
            return Leak(stream.datastream_id, start, ramp, peak)
    return None

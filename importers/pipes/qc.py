"""CJJ 61 logic checks on a pipe network; the report is stored on ``dataset.qc``.

Rules (all are errors; ``--strict`` refuses an import that has any):
  duplicate_code      two points with one point number, or two segments with one code
                      (CJJ 61 line tables: the same start and end point twice); the first is kept
  missing_node        a segment names a point that is not in the point table; it is not stored
  orphan_point        a point no segment touches
  ground_mismatch     地面高程 ≠ 井底高程 + 井底埋深 (or line-end elevation + 埋深) beyond tolerance
  tee_degree          a 三通 (tee) point that does not join exactly 3 segments
  zero_length         a segment whose ends coincide (2D length below 1 mm)
  backward_slope      a gravity (PS) segment whose end invert is above its start invert
  absurd_diameter     a diameter, width or height outside 10..10000 mm (or not positive)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cim.utilities import is_gravity
from importers.pipes.network import Network
from importers.pipes.topology import Placed, degrees, index_ends

GROUND_TOLERANCE_M = 0.05
SLOPE_TOLERANCE_M = 0.01
ZERO_LENGTH_M = 0.001
DIAMETER_RANGE_MM = (10.0, 10000.0)
MAX_LISTED = 500
RULES = (
    "duplicate_code",
    "missing_node",
    "orphan_point",
    "ground_mismatch",
    "tee_degree",
    "zero_length",
    "backward_slope",
    "absurd_diameter",
)


@dataclass(frozen=True)
class Issue:
    """One QC finding about one point or segment."""

    rule: str
    code: str
    message: str
    severity: str = "error"

    def to_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


def check_source(network: Network) -> tuple[Network, list[Issue]]:
    """Duplicates and missing nodes (dropped), and source-value rules; returns the clean network."""
    issues: list[Issue] = []
    nodes = network.nodes
    dup_nodes = nodes["code"].duplicated(keep="first").to_numpy()
    for code in nodes["code"][dup_nodes].unique():
        count = int((nodes["code"] == code).sum())
        issues.append(Issue("duplicate_code", str(code), f"point {code} appears {count} times"))
    nodes = nodes[~dup_nodes]
    segments = network.segments
    dup_segments = segments["code"].duplicated(keep="first").to_numpy()
    for code in segments["code"][dup_segments].unique():
        count = int((segments["code"] == code).sum())
        issues.append(Issue("duplicate_code", str(code), f"segment {code} appears {count} times"))
    segments = segments[~dup_segments]
    known = pd.Index(nodes["code"])
    starts = known.get_indexer(segments["start"]).astype(np.int64)
    ends = known.get_indexer(segments["end"]).astype(np.int64)
    starts_ok = starts >= 0
    ends_ok = ends >= 0
    for row in segments[~(starts_ok & ends_ok)].itertuples():
        missing = [str(c) for c in (row.start, row.end) if c is None or c not in known]
        issues.append(
            Issue(
                "missing_node",
                str(row.code),
                f"segment {row.code} references point(s) not in the point table: "
                + ", ".join(m if m != "None" else "(empty)" for m in missing),
            )
        )
    # Kept for index_ends: resolving a million codes again cost more than all the checks
    segments = segments[starts_ok & ends_ok].assign(
        start_index=starts[starts_ok & ends_ok], end_index=ends[starts_ok & ends_ok]
    )
    clean = Network(
        nodes=nodes,
        segments=segments,
        source_format=network.source_format,
        source_crs=network.source_crs,
        units=network.units,
        warnings=network.warnings,
        counts_by_type=network.counts_by_type,
    )
    issues.extend(_ground_mismatch(clean))
    issues.extend(_absurd_sizes(clean))
    return clean, issues


def _ground_mismatch(network: Network) -> list[Issue]:
    issues: list[Issue] = []
    nodes = network.nodes
    ground = nodes["ground_z"].to_numpy(dtype=np.float64)
    bottom = nodes["bottom_z"].to_numpy(dtype=np.float64)
    depth = nodes["depth"].to_numpy(dtype=np.float64)
    gap = ground - (bottom + depth)
    for i in np.flatnonzero(np.abs(gap) > GROUND_TOLERANCE_M):
        issues.append(
            Issue(
                "ground_mismatch",
                str(nodes["code"].iat[i]),
                f"point {nodes['code'].iat[i]}: ground {ground[i]:.3f} ≠ bottom {bottom[i]:.3f} + "
                f"depth {depth[i]:.3f} (off by {gap[i]:+.3f} m)",
            )
        )
    segments = network.segments
    start, end = index_ends(network)
    for name, idx in (("start", start), ("end", end)):
        by_top = (segments["depth_ref"] == "top").to_numpy()
        elevation = np.where(
            by_top,
            segments[f"{name}_top"].to_numpy(dtype=np.float64),
            segments[f"{name}_invert"].to_numpy(dtype=np.float64),
        )
        end_depth = segments[f"{name}_depth"].to_numpy(dtype=np.float64)
        gap = ground[idx] - (elevation + end_depth)
        for i in np.flatnonzero(np.abs(gap) > GROUND_TOLERANCE_M):
            node = segments[name].iat[i]
            issues.append(
                Issue(
                    "ground_mismatch",
                    str(segments["code"].iat[i]),
                    f"segment {segments['code'].iat[i]} at {name} point {node}: ground "
                    f"{ground[idx[i]]:.3f} ≠ elevation {elevation[i]:.3f} + depth "
                    f"{end_depth[i]:.3f}"
                    f" (off by {gap[i]:+.3f} m)",
                )
            )
    return issues


def _absurd_sizes(network: Network) -> list[Issue]:
    issues: list[Issue] = []
    low, high = DIAMETER_RANGE_MM
    segments = network.segments
    for column in ("diameter_mm", "width_mm", "height_mm"):
        values = segments[column].to_numpy(dtype=np.float64)
        bad = np.isfinite(values) & ((values < low) | (values > high))
        for i in np.flatnonzero(bad):
            issues.append(
                Issue(
                    "absurd_diameter",
                    str(segments["code"].iat[i]),
                    f"segment {segments['code'].iat[i]}: {column.removesuffix('_mm')} "
                    f"{values[i]:g} mm is outside {low:g}..{high:g} mm",
                )
            )
    return issues


def check_placed(placed: Placed) -> list[Issue]:
    """Rules on the placed network: orphans, tee degree, zero length, backward gravity slope."""
    issues: list[Issue] = []
    nodes = placed.nodes
    segments = placed.segments
    degree = degrees(len(nodes), segments["start_index"], segments["end_index"])
    codes = nodes["code"].to_numpy()
    for i in np.flatnonzero(degree == 0):
        issues.append(Issue("orphan_point", str(codes[i]), f"point {codes[i]} joins no segment"))
    kinds = nodes["kind"].to_numpy()
    for i in np.flatnonzero((kinds == "tee") & (degree != 3)):
        issues.append(
            Issue(
                "tee_degree",
                str(codes[i]),
                f"tee (三通) {codes[i]} joins {degree[i]} segment(s), not 3",
            )
        )
    coords, offsets = placed.coords, placed.offsets
    seg_codes = segments["code"].to_numpy()
    step = np.zeros(len(coords))
    step[1:] = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    step[offsets[:-1]] = 0.0
    spans = np.add.reduceat(step, offsets[:-1]) if len(segments) else np.zeros(0)
    same_node = (segments["start_index"] == segments["end_index"]).to_numpy()
    for i in np.flatnonzero(same_node | (spans < ZERO_LENGTH_M)):
        issues.append(
            Issue("zero_length", str(seg_codes[i]), f"segment {seg_codes[i]} has zero length")
        )
    utilities = segments["utility"]
    gravity = utilities.map({u: is_gravity(u) for u in utilities.dropna().unique()})
    gravity = gravity.fillna(False).to_numpy(dtype=bool)
    measured = (
        segments["z_source"]
        .isin(["elevation", "depth", "elevation/depth", "depth/elevation"])
        .to_numpy()
    )
    rise = segments["end_invert"].to_numpy() - segments["start_invert"].to_numpy()
    for i in np.flatnonzero(gravity & measured & (rise > SLOPE_TOLERANCE_M)):
        issues.append(
            Issue(
                "backward_slope",
                str(seg_codes[i]),
                f"gravity segment {seg_codes[i]} rises {rise[i]:.3f} m from start to end "
                f"({segments['start_invert'].iat[i]:.3f} -> {segments['end_invert'].iat[i]:.3f})",
            )
        )
    return issues


def report(issues: list[Issue]) -> dict[str, Any]:
    """The JSON stored on ``dataset.qc``: counts per rule and the first issues."""
    by_rule = {rule: 0 for rule in RULES}
    for issue in issues:
        by_rule[issue.rule] = by_rule.get(issue.rule, 0) + 1
    errors = sum(1 for i in issues if i.severity == "error")
    return {
        "standard": "CJJ 61-2017 logic checks",
        "errors": errors,
        "warnings": len(issues) - errors,
        "by_rule": by_rule,
        "issues": [i.to_dict() for i in issues[:MAX_LISTED]],
        "truncated": len(issues) > MAX_LISTED,
        "tolerances": {
            "ground_m": GROUND_TOLERANCE_M,
            "slope_m": SLOPE_TOLERANCE_M,
            "zero_length_m": ZERO_LENGTH_M,
            "diameter_mm": list(DIAMETER_RANGE_MM),
        },
    }

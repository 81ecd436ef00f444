"""Small SVG drawings for the cross-section and profile charts (no plotting stack needed).

Horizontal axis: distance along the section line / profile (m); vertical axis: elevation (m),
exaggerated to fill the drawing, as engineering sections are. Titles and axis names come in
the caller's language (:func:`cim.services.tables.language.svg_text`); the font list starts with
CJK fonts so Chinese renders where they are installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, MARGIN = 900, 420, 50
FONT = "'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif"


@dataclass(frozen=True)
class Frame:
    """Maps (distance, elevation) to SVG pixels."""

    x0: float
    x1: float
    z0: float
    z1: float

    def x(self, distance: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return MARGIN + (distance - self.x0) / span * (WIDTH - 2 * MARGIN)

    def y(self, elevation: float) -> float:
        span = (self.z1 - self.z0) or 1.0
        return HEIGHT - MARGIN - (elevation - self.z0) / span * (HEIGHT - 2 * MARGIN)

    def sx(self) -> float:
        return (WIDTH - 2 * MARGIN) / ((self.x1 - self.x0) or 1.0)

    def sy(self) -> float:
        return (HEIGHT - 2 * MARGIN) / ((self.z1 - self.z0) or 1.0)


def frame_for(distances: list[float], elevations: list[float]) -> Frame:
    z0, z1 = (min(elevations), max(elevations)) if elevations else (0.0, 1.0)
    pad = max(0.5, (z1 - z0) * 0.1)
    x0, x1 = (min(distances), max(distances)) if distances else (0.0, 1.0)
    return Frame(x0, x1 if x1 > x0 else x0 + 1.0, z0 - pad, z1 + pad)


def polyline(
    frame: Frame, points: list[tuple[float, float]], colour: str, *, dash: str = ""
) -> str:
    coords = " ".join(f"{frame.x(d):.1f},{frame.y(z):.1f}" for d, z in points)
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dashes}/>'


def axes(frame: Frame, title: str, distance_title: str, elevation_title: str) -> list[str]:
    """Title, both axes with five ticks each, and the axes' names (distance, elevation)."""
    parts = [
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 12}" font-size="11" text-anchor="end"'
        f' font-family="{FONT}">{escape(distance_title)}</text>',
        f'<text x="{MARGIN + 4}" y="{MARGIN - 6}" font-size="11"'
        f' font-family="{FONT}">{escape(elevation_title)}</text>',
        f'<text x="{MARGIN}" y="24" font-size="15" font-family="{FONT}">{escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}"'
        ' stroke="#444"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#444"/>',
    ]
    for k in range(5):
        z = frame.z0 + (frame.z1 - frame.z0) * k / 4
        d = frame.x0 + (frame.x1 - frame.x0) * k / 4
        parts.append(
            f'<text x="4" y="{frame.y(z) + 4:.1f}" font-size="10" font-family="{FONT}">'
            f"{z:.1f}</text>"
        )
        parts.append(
            f'<text x="{frame.x(d) - 10:.1f}" y="{HEIGHT - MARGIN + 16}" font-size="10"'
            f' font-family="{FONT}">{d:.0f} m</text>'
        )
    return parts


def document(parts: list[str], lang: str) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xml:lang="{escape(lang)}" width="{WIDTH}"'
        f' height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}">\n<rect width="100%" height="100%" fill="white"/>\n'
        f"{body}\n</svg>\n"
    )


def label(x: float, y: float, content: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" font-family="{FONT}">'
        f"{escape(content)}</text>"
    )

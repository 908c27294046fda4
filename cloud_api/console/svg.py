"""The ticket page's pictures as inline SVG, drawn on the server (no JavaScript library): the weight
trace of the plates involved, and the floor map with the candidate shoppers where they stood."""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

from store_edge.protocol.messages import PlateTrace, ShopperPath

NS = 1_000_000_000
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values between lo and hi (1, 2 or 5 times a power of ten apart)."""
    raw = (hi - lo if hi > lo else 1.0) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step)
    return [round(k * step, 6) for k in range(first, math.floor(hi / step) + 1)]


def weight_plot(traces: list[PlateTrace], window_ns: tuple[int, int], width: int = 640, height: int = 260) -> Markup:
    """Grams over seconds (0 = the event's start), one line per plate; the event's window shaded."""
    if not traces:
        return Markup('<p class="none">The edge sent no weight readings with this ticket.</p>')
    left, right, top, bottom = 64, 16, 12, 40
    t0 = window_ns[0]
    series = []
    for trace in traces:
        points = [
            ((trace.t0_ns + i * trace.period_ns - t0) / NS, g) for i, g in enumerate(trace.grams) if g is not None
        ]
        series.append((trace.plate_id, points))
    xs = [x for _, pts in series for x, _ in pts] or [0.0, 1.0]
    ys = [y for _, pts in series for _, y in pts] or [0.0, 1.0]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    pad = max((y_hi - y_lo) * 0.08, 5.0)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    x_hi = x_hi if x_hi > x_lo else x_lo + 1

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y_hi - y) / (y_hi - y_lo) * (height - top - bottom)

    out = [
        f'<svg id="weight-plot" class="plot" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Weight trace of plates {escape(", ".join(p for p, _ in series))}">'
    ]
    w0, w1 = sx(max(x_lo, 0.0)), sx(min(x_hi, (window_ns[1] - t0) / NS))
    out.append(f'<rect class="window" x="{w0:.1f}" y="{top}" width="{max(w1 - w0, 1):.1f}" '
               f'height="{height - top - bottom}"><title>the event</title></rect>')  # fmt: skip
    for y in _nice_ticks(y_lo, y_hi):
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for x in _nice_ticks(x_lo, x_hi, 8):
        out.append(f'<text class="tick" x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<text class="label" x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">'
               "seconds from the event's start</text>")  # fmt: skip
    out.append(f'<text class="label" transform="translate(14 {(top + height - bottom) / 2}) rotate(-90)" '
               'text-anchor="middle">grams</text>')  # fmt: skip
    for i, (plate_id, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline class="trace" data-plate="{escape(plate_id)}" stroke="{colour}" points="{path}"/>')
        out.append(f'<text class="legend" x="{left + 8}" y="{top + 16 + 16 * i}" fill="{colour}">'
                   f"plate {escape(plate_id)}</text>")  # fmt: skip
    out.append(f'<rect class="frame" x="{left}" y="{top}" width="{width - left - right}" '
               f'height="{height - top - bottom}"/></svg>')  # fmt: skip
    return Markup("".join(out))


def floor_map(
    store_map: dict[str, object] | None,
    plate_ids: list[str],
    shoppers: list[tuple[str, ShopperPath]],
    event_ns: int,
    width: int = 640,
) -> Markup:
    """The store from above (metres): shelves, the ticket's plates in red, and each candidate's path
    during the event with a dot where they stood at its start. `shoppers`: (label, path)."""
    if not store_map:
        return Markup('<p class="none">No floor map: seed the store with <code>cloud-api seed --store</code>.</p>')
    outline: list[list[float]] = store_map["outline"]  # type: ignore[assignment]
    xs = [p[0] for p in outline]
    ys = [p[1] for p in outline]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    margin = 0.5
    scale = (width - 2) / (x_hi - x_lo + 2 * margin)
    height = round((y_hi - y_lo + 2 * margin) * scale) + 2

    def sx(x: float) -> float:
        return (x - x_lo + margin) * scale + 1

    def sy(y: float) -> float:  # store y points up, SVG y down
        return (y_hi - y + margin) * scale + 1

    def poly(points: list[list[float]]) -> str:
        return " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)

    out = [f'<svg id="floor-map" class="map" viewBox="0 0 {width} {height}" role="img" aria-label="Floor map">']
    out.append(f'<polygon class="floor" points="{poly(outline)}"/>')
    for gondola in store_map.get("gondolas", []):  # type: ignore[attr-defined]
        out.append(f'<polygon class="gondola" points="{poly(gondola["footprint"])}"><title>{escape(gondola["id"])}'
                   "</title></polygon>")  # fmt: skip
    for gate in store_map.get("gates", []):  # type: ignore[attr-defined]
        (x1, y1), (x2, y2) = gate["line"]
        out.append(f'<line class="gate" x1="{sx(x1):.1f}" y1="{sy(y1):.1f}" x2="{sx(x2):.1f}" y2="{sy(y2):.1f}">'
                   f'<title>{escape(gate["kind"])} gate {escape(gate["id"])}</title></line>')  # fmt: skip
    plates: dict[str, dict[str, list[list[float]]]] = store_map.get("plates", {})  # type: ignore[assignment]
    for plate_id in plate_ids:
        plate = plates.get(plate_id)
        if plate is not None:
            (x1, y1), (x2, y2) = plate["front"]
            out.append(f'<line class="plate" data-plate="{escape(plate_id)}" x1="{sx(x1):.1f}" y1="{sy(y1):.1f}" '
                       f'x2="{sx(x2):.1f}" y2="{sy(y2):.1f}"><title>plate {escape(plate_id)}</title>'
                       "</line>")  # fmt: skip
    for i, (label, path) in enumerate(shoppers):
        colour = COLOURS[(i + 1) % len(COLOURS)]
        if not path.points:
            continue
        out.append(f'<polyline class="path" stroke="{colour}" points="{poly([[x, y] for _, x, y in path.points])}"/>')
        _, x, y = min(path.points, key=lambda p: abs(p[0] - event_ns))
        out.append(f'<circle class="shopper" data-shopper="{i + 1}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="7" '
                   f'fill="{colour}"><title>{escape(label)}</title></circle>')  # fmt: skip
        out.append(f'<text class="shopper-label" x="{sx(x) + 10:.1f}" y="{sy(y) - 8:.1f}" fill="{colour}">'
                   f"{i + 1}: {escape(label)}</text>")  # fmt: skip
        for _, hx, hy, _ in path.hands:
            out.append(f'<circle class="hand" cx="{sx(hx):.1f}" cy="{sy(hy):.1f}" r="2.5" fill="{colour}"/>')
    out.append("</svg>")
    return Markup("".join(out))

#!/usr/bin/env python3
"""Draw the system's data flow, sensors to carts to receipts, as `docs/img/architecture.png`.

    .venv/bin/python tools/draw_architecture.py                 # writes docs/img/architecture.png
    .venv/bin/python tools/draw_architecture.py --out x.png

Boxes and arrows only (matplotlib). Dashed grey boxes are parts that are planned but not built yet.
Keep it in step with docs/architecture.md, which embeds the picture and has the same flow as Mermaid.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "docs" / "img" / "architecture.png"

# colours: one per part of the system
SENSOR = "#e8f1fb"
BROKER = "#fff4d6"
EDGE = "#e6f5e6"
EDGE_INNER = "#ffffff"
CLOUD = "#f3e8fb"
PEOPLE = "#fde9e4"
PLANNED = "#f2f2f2"
INK = "#222222"
GREY = "#777777"


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w, self.y + self.h / 2)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    def at(self, fx: float, fy: float) -> tuple[float, float]:
        """A point inside the box, as fractions of its width and height from the lower left corner."""
        return (self.x + fx * self.w, self.y + fy * self.h)


def box(
    ax: Any,
    x: float,
    y: float,
    w: float,
    h: float,
    title: str,
    body: str = "",
    face: str = EDGE_INNER,
    planned: bool = False,
    title_size: float = 11,
    body_size: float = 9,
    title_on_top: bool = False,
) -> Box:
    """A rounded box with a bold title and a few lines of text under it."""
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.8",
            facecolor=PLANNED if planned else face,
            edgecolor=GREY if planned else INK,
            linestyle=(0, (4, 3)) if planned else "-",
            linewidth=1.2,
        )
    )
    colour = GREY if planned else INK
    if title_on_top:
        ax.text(x + 0.8, y + h - 0.8, title, ha="left", va="top", fontsize=title_size, weight="bold", color=colour)
    elif body:
        ax.text(x + w / 2, y + h - 0.8, title, ha="center", va="top", fontsize=title_size, weight="bold", color=colour)
        ax.text(x + w / 2, y + h - 3.2, body, ha="center", va="top", fontsize=body_size, color=colour, linespacing=1.3)
    else:
        ax.text(x + w / 2, y + h / 2, title, ha="center", va="center", fontsize=title_size, weight="bold", color=colour)
    return Box(x, y, w, h)


def arrow(
    ax: Any,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    planned: bool = False,
    both: bool = False,
    rad: float = 0.0,
    label_at: tuple[float, float] | None = None,
    label_size: float = 8.5,
) -> None:
    colour = GREY if planned else INK
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="<|-|>" if both else "-|>",
            mutation_scale=13,
            color=colour,
            linewidth=1.3,
            linestyle=(0, (4, 3)) if planned else "-",
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=1,
            shrinkB=1,
        )
    )
    if label:
        lx, ly = label_at or ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.9)
        ax.text(
            lx,
            ly,
            label,
            ha="center",
            va="bottom",
            fontsize=label_size,
            color=colour,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.9},
        )


def draw(out: Path) -> Path:
    fig = plt.figure(figsize=(19, 11.2))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, 190)
    ax.set_ylim(0, 112)
    ax.axis("off")

    ax.text(95, 109, "Cashierless checkout: sensors to carts to receipts", ha="center", va="center", fontsize=16,
            weight="bold")  # fmt: skip
    ax.text(
        95,
        105.3,
        "Everything drawn is in this repository.  "
        "Every MQTT topic starts with cl/v1/STORE/.  Times are UTC ns; money is integer cents.",
        ha="center",
        va="center",
        fontsize=10,
        color=GREY,
    )

    # --- column 1: the store's devices --------------------------------------------------------------
    ax.text(17, 97.5, "In the store", ha="center", fontsize=12, weight="bold")
    gate = box(
        ax, 2, 78, 30, 17, "Entry and exit gates", "code scanner: gate/G/scan\ncontroller: gate/G/decision\n"
        "person counter: gate/G/passage", face=SENSOR,
    )  # fmt: skip
    scales = box(
        ax, 2, 62, 30, 13, "Load cells", "one scale controller per shelf\nweight/SHELF (raw grams, 60 Hz)", face=SENSOR
    )
    curtains = box(
        ax, 2, 48, 30, 11, "Light curtains", "one per shelf front\ncurtain/SHELF (enter, leave)", face=SENSOR
    )
    cameras = box(ax, 2, 34, 30, 11, "Ceiling cameras", "camera/CAM/frame (QoS 0)", face=SENSOR)
    vision = box(
        ax, 2, 10, 30, 19, "Vision workers", "YOLO + ByteTrack per camera\nread camera/CAM/frame\n"
        "write camera/CAM/tracks\na store tracker writes tracks",
    )  # fmt: skip

    # --- column 2: the broker ----------------------------------------------------------------------
    broker = box(
        ax,
        40,
        10,
        26,
        85,
        "MQTT broker",
        "Mosquitto in a store\n(embedded amqtt for tests)\nQoS 1, one tree per store",
        face=BROKER,
        title_size=12,
        body_size=9.5,
    )
    topics = (
        "cl/v1/STORE/\n  weight/SHELF\n  curtain/SHELF\n  gate/G/scan\n  gate/G/decision\n  gate/G/passage\n"
        "  camera/CAM/frame\n  camera/CAM/tracks\n  tracks\n\n  cart/VISIT\n  review/TICKET\n  status/DEVICE\n"
        "  deadletter"
    )
    ax.text(43, 80, topics, ha="left", va="top", fontsize=10, family="monospace", linespacing=1.45)
    ax.text(broker.x + broker.w / 2, 13, "per-device users and ACLs:\nsee docs/deploy.md", ha="center", va="bottom",
            fontsize=8.5, color=GREY)  # fmt: skip
    for b in (scales, curtains, cameras):
        arrow(ax, b.right, (broker.x, b.right[1]), "publish" if b is scales else "")
    arrow(ax, gate.at(1, 0.62), (broker.x, gate.at(1, 0.62)[1]))
    arrow(ax, (broker.x, vision.at(1, 0.35)[1]), vision.at(1, 0.35), "frames")
    arrow(ax, vision.at(1, 0.7), (broker.x, vision.at(1, 0.7)[1]), "tracks")

    # --- column 3: the edge worker -----------------------------------------------------------------
    edge = box(
        ax, 74, 4, 42, 93, "Edge worker: store-edge run (one per store)", face=EDGE, title_size=11.5, title_on_top=True
    )
    ix, iw = 77, 36
    paho = box(ax, ix, 83, iw, 8.5, "MQTT link (paho thread)", "subscribes cl/v1/STORE/#, only queues")
    journal = box(ax, ix, 71, iw, 9, "Journal thread", "SQLite journal first,\nthen the QoS 1 ack")
    worker = box(
        ax, ix, 55, iw, 13, "Worker thread", "decode (bad: deadletter),\ndrop repeats by (device, boot, seq),\n"
        "merge in time order (watermark)",
    )  # fmt: skip
    engine = box(
        ax, ix, 32, iw, 20, "Fusion engine", "store_edge/fusion\nweight events per plate\nproduct hypotheses\n"
        "shopper association (gates, tracks)\ncarts with confidence\nreview tickets for unsure lines",
    )  # fmt: skip
    outbox = box(ax, ix, 23.5, iw, 6, "Outbox (one row per visit)", title_size=10)
    sender = box(ax, ix, 13.5, iw, 7.5, "Cloud sender thread", "PUT each finished cart, retry")
    ax.text(
        edge.x + edge.w / 2,
        5,
        "state: edge-state.sqlite (journal, snapshot, outbox)\nmonitoring: /healthz, /metrics on 127.0.0.1",
        ha="center",
        va="bottom",
        fontsize=8.5,
        color=INK,
    )
    arrow(ax, (broker.x + broker.w, paho.left[1]), paho.left, "cl/v1/STORE/#")
    arrow(ax, paho.bottom, journal.top)
    arrow(ax, journal.bottom, worker.top)
    arrow(ax, worker.bottom, engine.top)
    arrow(ax, engine.bottom, outbox.top, "closed carts", label_at=(104, 29.9), label_size=8)
    arrow(ax, outbox.bottom, sender.top)
    arrow(ax, engine.left, (broker.x + broker.w, engine.left[1]), "cart, review,\nstatus,\ndeadletter",
          label_at=(70, 43.2), label_size=8)  # fmt: skip

    # --- column 4: the cloud API -------------------------------------------------------------------
    cloud = box(ax, 138, 4, 31, 93, "Cloud API: cloud-api serve", face=CLOUD, title_size=11.5, title_on_top=True)
    cx, cw = 141, 25
    checkin = box(ax, cx, 78, cw, 13, "Check-in", "entry codes (30 s, signed)\ngate decision, visit opens")
    settle = box(ax, cx, 60, cw, 15, "Settlement", "cart applied once per visit\nprices, promotions, tax\n"
                 "review lines held")  # fmt: skip
    pay = box(ax, cx, 48, cw, 9, "Payments", "test mode or Stripe")
    receipts = box(ax, cx, 36, cw, 9, "Receipts", "web page, email, webhook")
    disputes = box(ax, cx, 27, cw, 6, "Disputes, refunds", title_size=10)
    staff_api = box(ax, cx, 19, cw, 5.5, "Staff API", title_size=10)
    box(ax, cx, 7, cw, 9, "Database", "PostgreSQL (or SQLite)\nmoney in integer cents", face="#ffffff")
    arrow(ax, settle.bottom, pay.top)
    arrow(ax, pay.bottom, receipts.top)
    arrow(ax, disputes.at(0.5, 1), receipts.bottom, both=True)
    # the edge hands finished carts to settlement
    bend = 131.0
    ax.plot([sender.right[0], bend, bend], [sender.right[1], sender.right[1], settle.left[1]], color=INK, linewidth=1.3)
    arrow(ax, (bend, settle.left[1]), settle.left)
    ax.text(
        (edge.x + edge.w + cloud.x) / 2 - 0.5,
        sender.right[1] + 1.0,
        "HTTPS PUT\n/v1/edge/carts/VISIT\ndevice key,\nIdempotency-Key",
        ha="center",
        va="bottom",
        fontsize=8,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
    )
    # the gate controller asks the cloud for its decision: a lane along the top
    lane_y = 100.5
    ax.plot([gate.top[0], gate.top[0], checkin.top[0]], [gate.y + gate.h, lane_y, lane_y], color=INK, linewidth=1.3)
    arrow(ax, (checkin.top[0], lane_y), checkin.top)
    ax.text(
        95,
        lane_y + 0.4,
        "gate controller: HTTPS POST /v1/gates/G/scans (device key) -> open or refuse, with the cloud's visit id",
        ha="center",
        va="bottom",
        fontsize=9,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
    )

    # --- column 5: people ------------------------------------------------------------------------
    app = box(
        ax, 172, 60, 17, 31, "Shopper app", "and its backend\n\nasks for an entry\ncode (QR), shows\nit at the gate\n\n"
        "gets receipts\n(webhook, email),\ndisputes lines", face=PEOPLE,
    )  # fmt: skip
    staff = box(
        ax, 172, 27, 17, 18, "Staff", "review held lines,\ndisputes, audit\nin the console\nor through the API",
        face=PEOPLE,
    )  # fmt: skip
    console = box(ax, 172, 8, 17, 13, "Review console", "/console/ pages:\nqueue, evidence,\ndecisions")
    arrow(ax, app.at(0, 0.85), (checkin.x + checkin.w, app.at(0, 0.85)[1]), "code", label_at=(169.5, 87.5))
    arrow(ax, receipts.right, app.at(0.3, 0), "receipt", rad=0.3, label_at=(172.5, 49))
    arrow(ax, staff.left, staff_api.right, both=True)
    arrow(ax, console.left, staff_api.at(1, 0.2))

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, facecolor="white")
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"PNG to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    print(draw(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

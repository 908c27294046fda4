"""Pictures of a recording: the floor map with everyone's path, and the weight traces of the plates
around each action. For people who would rather look than read (`store-edge plot`)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Polygon

from store_edge.layout.model import StoreLayout
from store_edge.protocol.topics import store_prefix
from store_edge.protocol.truth import TRUTH_POSITIONS, TruthAction
from store_edge.recording.contents import read_actions
from store_edge.recording.mcap_io import read_messages

NS = 1e9


def draw_store(ax: Axes, store: StoreLayout) -> None:
    outline = np.array(store.floor.outline)
    ax.add_patch(Polygon(outline, closed=True, fill=False, lw=2, color="black"))
    for g in store.gondolas:
        ax.add_patch(Polygon(g.footprint(), closed=True, color="#c8b89a", ec="#6b5b3e"))
        (x1, y1), (x2, y2) = g.front
        ax.plot([x1, x2], [y1, y2], color="#8a3b12", lw=2)
        cx, cy = g.footprint().mean(axis=0)
        ax.text(cx, cy, g.id, ha="center", va="center", fontsize=8)
    for gate in store.gates:
        (x1, y1), (x2, y2) = gate.line
        ax.plot([x1, x2], [y1, y2], color="green" if gate.kind == "entry" else "red", lw=4)
        ax.text(gate.midpoint[0], gate.midpoint[1] - 0.3, gate.id, ha="center", fontsize=7)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def plot_floor(path: str | Path, store: StoreLayout, out: Path) -> Path:
    paths: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for msg in read_messages(path, topics=[TRUTH_POSITIONS]):
        for s in msg.json()["shoppers"]:
            paths[s["shopper_id"]].append((s["x"], s["y"]))
    fig, ax = plt.subplots(figsize=(10, 8))
    draw_store(ax, store)
    cmap = plt.get_cmap("tab20")
    for k, (sid, pts) in enumerate(sorted(paths.items())):
        xy = np.array(pts)
        ax.plot(xy[:, 0], xy[:, 1], lw=1, color=cmap(k % 20), label=sid, alpha=0.8)
    marks = {"pick": ("v", "blue"), "put_back": ("^", "orange"), "touch": ("o", "gray")}
    for a in read_actions(path):
        if not a.plate_deltas_g or a.kind not in marks:
            continue
        x, y, _ = store.plate_geometry[next(iter(a.plate_deltas_g))].center
        marker, colour = marks[a.kind]
        ax.scatter([x], [y], marker=marker, color=colour, s=40, zorder=3)
        if a.misplaced:
            ax.scatter([x], [y], marker="x", color="red", s=80, zorder=4)
    if len(paths) <= 20:
        ax.legend(loc="upper right", fontsize=7, ncol=2)
    ax.set_title(f"{store.name}: shopper paths (truth); v pick, ^ put-back, x wrong place")
    out.mkdir(parents=True, exist_ok=True)
    dest = out / "floor.png"
    fig.savefig(dest, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return dest


def plot_action_traces(path: str | Path, store: StoreLayout, out: Path, limit: int = 20) -> list[Path]:
    """One picture per action: every plate of the shelf, relative to its level before the action."""
    by_shelf: dict[str, list[TruthAction]] = defaultdict(list)
    for a in [a for a in read_actions(path) if a.shelf_id][:limit]:
        by_shelf[str(a.shelf_id)].append(a)
    prefix = store_prefix(store.store_id)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shelf_id, acts in by_shelf.items():
        times: list[float] = []
        rows: list[list[float | None]] = []
        plate_ids: list[str] = []
        for msg in read_messages(path, topics=[f"{prefix}/weight/{shelf_id}"]):
            d = json.loads(msg.data)
            plate_ids = d["plate_ids"]
            for i, row in enumerate(d["samples"]):
                times.append((d["t0_ns"] + i * d["period_ns"]) / NS)
                rows.append(row)
        if not rows:
            continue
        t, v = np.array(times), np.array(rows, dtype=float)  # a null reading (None) becomes NaN
        for a in acts:
            t0, t1 = a.start_ns / NS, a.end_ns / NS
            win = (t > t0 - 2) & (t < t1 + 3)
            before = (t > t0 - 2) & (t < t0 - 0.5)
            fig, ax = plt.subplots(figsize=(9, 4))
            for j, pid in enumerate(plate_ids):
                base = np.median(v[before, j]) if before.any() else v[win, j][0]
                if pid in a.plate_deltas_g:
                    ax.plot(t[win] - t0, v[win, j] - base, lw=2, label=pid)
                else:
                    ax.plot(t[win] - t0, v[win, j] - base, lw=0.6, alpha=0.5)
            ax.axvspan(0, t1 - t0, color="yellow", alpha=0.15, label="hand in shelf")
            ax.set_xlabel("seconds from the hand entering")
            ax.set_ylabel("grams, relative to before")
            deltas = ", ".join(f"{p}: {d:+.1f} g" for p, d in a.plate_deltas_g.items()) or "no change"
            ax.set_title(f"{a.action_id} {a.kind} x{a.quantity} by {a.shopper_id} on {shelf_id} ({deltas})", fontsize=9)
            ax.legend(fontsize=7, loc="lower left")
            dest = out / f"action-{a.action_id}-{a.kind}.png"
            fig.savefig(dest, dpi=80, bbox_inches="tight")
            plt.close(fig)
            written.append(dest)
    return written

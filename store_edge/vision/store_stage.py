"""The store stage of the vision path: the cameras' `CameraTracks` to store-level tracks with hands.

The per-camera stage (`detector.CameraStage`) turns each camera's frames into `CameraTracks`: per
person a floor point, a look (`appearance`) and the hand evidence of that camera (`hand_candidates`).
This stage joins them: `StoreTracker` makes one track per shopper from the cameras' floor points and
looks, and `HandFinder.combine` takes each shopper's hand from the evidence of the cameras that see
them. It reads nothing but those messages, so it runs the same beside the per-camera stage in one
process (`store-edge vision`) and on a machine of its own fed over MQTT (`--stage store`).

Pure: no clocks or I/O; time comes from the messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from store_edge.layout.camera import CameraModel
from store_edge.layout.model import StoreLayout
from store_edge.protocol import messages as m
from store_edge.vision.hands import HandFinder, HandParams
from store_edge.vision.store_tracker import CameraObservation, FloorTrack, StoreTracker, StoreTrackerParams


@dataclass(frozen=True)
class _Latest:
    t_ns: int
    tracks: tuple[m.CameraTrack, ...]


class StoreStage:
    """Store-level tracks from the latest `CameraTracks` of every camera."""

    def __init__(
        self,
        store: StoreLayout,
        tracker_params: StoreTrackerParams | None = None,
        stale_s: float = 0.3,
        hand_params: HandParams | None = None,
    ) -> None:
        self.store = store
        self.cameras = {c.id: c for c in store.cameras}
        self.hands = HandFinder(store, {c.id: CameraModel(c) for c in store.cameras}, hand_params)
        self.store_tracker = StoreTracker(tracker_params, entry_lines=[g.line for g in store.gates_of_kind("entry")])
        self.latest: dict[str, _Latest] = {}
        self.stale_ns = round(stale_s * 1e9)
        """A camera's latest tracks count at a tick at most this much older than it."""

    def add(self, msg: m.CameraTracks) -> None:
        """One camera's tracks of one frame; an older frame of a camera than its latest is ignored (a
        duplicate or a late delivery), and so is a camera the layout does not have."""
        old = self.latest.get(msg.camera_id)
        if msg.camera_id in self.cameras and (old is None or msg.frame_ts_ns >= old.t_ns):
            self.latest[msg.camera_id] = _Latest(msg.frame_ts_ns, tuple(msg.tracks))

    def step(self, batch: Sequence[m.CameraTracks]) -> tuple[int, list[FloorTrack]]:
        """One instant: its cameras' tracks, then a tick at the newest frame time among them."""
        for msg in batch:
            self.add(msg)
        t_ns = max(msg.frame_ts_ns for msg in batch)
        return t_ns, self.tick(t_ns)

    def tick(self, t_ns: int) -> list[FloorTrack]:
        """Store-level tracks at `t_ns` from each camera's latest tracks (if recent enough), each with its
        hand where the cameras that see it show an arm reaching into a shelf. Cameras are taken in id
        order, so the result does not depend on the order their messages came in."""
        observations: list[CameraObservation] = []
        evidence: dict[tuple[str, int], m.CameraTrack] = {}
        for cid in sorted(self.latest):
            latest = self.latest[cid]
            if t_ns - latest.t_ns > self.stale_ns:
                continue
            for tr in latest.tracks:
                if tr.floor is None:
                    continue
                look = tuple(tr.appearance) if tr.appearance is not None else None
                observations.append(CameraObservation(cid, tr.track_id, tr.floor[0], tr.floor[1], tr.confidence, look))
                evidence[(cid, tr.track_id)] = tr
        tracks = self.store_tracker.step(t_ns, observations)
        links = self.store_tracker.links
        out = []
        for track in tracks:
            # each camera's hand evidence, with where that camera places the shopper
            views = []
            for o in observations:
                candidates = evidence[(o.camera_id, o.track_id)].hand_candidates
                if candidates is not None and links.get((o.camera_id, o.track_id)) == track.track_id:
                    views.append((o.camera_id, o.x, o.y, candidates))
            hand = self.hands.combine(track.x, track.y, views) if views else None
            out.append(dataclasses.replace(track, hand=hand) if hand is not None else track)
        return out

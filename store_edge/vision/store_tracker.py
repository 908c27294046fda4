"""Store-level tracking: per-camera tracks (feet on the floor) merged into one track per shopper.

Each camera's tracker (ByteTrack) numbers people per camera. Cameras overlap, people walk from one
camera's view into the next, and a person hidden behind a gondola comes back under a new camera track
id. This module keeps one store-level id per person through all of that, on floor geometry alone:

1. A camera track already linked to a store track stays with it (the camera tracker is trusted to
   follow a person within its own view) unless it has jumped farther than a person walks: then the
   camera tracker swapped or re-used the id, and the link is broken.
2. Camera tracks not linked yet are assigned to store tracks by floor distance (one observation per
   camera per store track, `scipy.optimize.linear_sum_assignment`), within a gate that grows with how
   long the store track has gone unseen: this is camera hand-over, and re-finding a person after an
   occlusion.
3. What is left are new people: observations of different cameras close together are one person.
   A new store track is published from its `min_hits`-th tick on (one stray detection is not a person).
4. A store track unseen for `max_coast_s` ends; two store tracks that stay within `merge_m` of each other
   while no camera sees both at once are one person seen twice, and the younger is folded into the older.

Pure: no clocks or I/O; time comes from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from store_edge.layout.model import distance_to_segment
from store_edge.vision.appearance import Embedding, cosine

NS = 1_000_000_000


@dataclass(frozen=True)
class CameraObservation:
    """One camera track in one frame, placed on the floor."""

    camera_id: str
    track_id: int
    """The camera tracker's id (per camera)."""
    x: float
    y: float
    confidence: float = 1.0
    appearance: Embedding | None = None
    """The person's look in this frame, if the camera could tell (`appearance.appearance_embedding`)."""


@dataclass(frozen=True)
class FloorTrack:
    """A store-level track at one tick."""

    track_id: str
    x: float
    y: float
    confidence: float
    cameras: tuple[str, ...]
    appearance: Embedding | None = None
    hand: tuple[float, float, float] | None = None
    """Where the shopper's hand is in a shelf (x, y, z store metres), if the cameras show it reaching."""


@dataclass(frozen=True)
class StoreTrackerParams:
    match_m: float = 0.8
    """A camera track this close to a store track's expected position may continue it."""
    walk_m_s: float = 1.6
    """How fast a person may have walked while unseen: the gate grows by this much per second."""
    max_gate_m: float = 3.0
    link_break_m: float = 1.2
    """A linked camera track this far from where its store track is expected has switched people."""
    same_person_m: float = 0.6
    """New observations of different cameras closer than this are one person."""
    max_coast_s: float = 4.0
    """A store track unseen this long has ended (occlusions behind gondolas are shorter)."""
    min_hits: int = 2
    merge_m: float = 0.35
    merge_ticks: int = 5
    velocity_smoothing: float = 0.3
    """Weight of the newest velocity estimate (the rest is the previous one)."""
    look_frames: int = 3
    """Clean observations (nobody else near in that camera) before a track's look is trusted."""
    look_keep: int = 40
    """Clean observations a look is averaged over; then it stays fixed, so a camera tracker that later
    follows somebody else under the same id is told by their different look."""
    clean_m: float = 0.7
    """An observation with another of the same camera this close may have the neighbour in its crop."""
    look_break: float = 0.55
    """A linked camera track whose look is less like its store track's than this has switched people."""
    look_min: float = 0.6
    """A store track unseen for `refind_after_s` is re-found only by an observation at least this alike."""
    look_weight_m: float = 2.0
    """How much unlikeness counts in assignment: metres per unit of (1 - cosine)."""
    refind_after_s: float = 0.6
    entry_zone_m: float = 0.6
    """An observation this close to an entry gate joins no store track last seen farther from it: a
    person stepping through the turnstile is somebody new (the fusion binds them to the scan), never
    a lost shopper found again."""


@dataclass
class _Track:
    track_id: str
    x: float
    y: float
    first_ns: int
    last_ns: int
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 0
    confidence: float = 0.0
    cameras: tuple[str, ...] = ()
    near: dict[str, int] = field(default_factory=dict)
    """Other track id -> consecutive ticks close to it with no camera seeing both."""
    look_sum: np.ndarray | None = None
    look_count: int = 0
    appearance: Embedding | None = None
    """This tick's look (the mean of its observations'), published with the track."""

    def look(self, min_count: int) -> np.ndarray | None:
        return self.look_sum if self.look_count >= min_count else None

    def predicted(self, t_ns: int) -> tuple[float, float]:
        # a person keeps walking only so far: extrapolate at most one second
        dt = min(max(t_ns - self.last_ns, 0) / NS, 1.0)
        return (self.x + self.vx * dt, self.y + self.vy * dt)


class StoreTracker:
    def __init__(
        self,
        params: StoreTrackerParams | None = None,
        id_prefix: str = "v",
        entry_lines: Sequence[tuple[tuple[float, float], tuple[float, float]]] = (),
    ) -> None:
        """`entry_lines`: the floor lines of the store's entry gates (`Gate.line`)."""
        self.params = params or StoreTrackerParams()
        self.id_prefix = id_prefix
        self.entry_lines = list(entry_lines)
        self.tracks: dict[str, _Track] = {}
        self.links: dict[tuple[str, int], str] = {}
        """(camera, camera track id) -> store track id."""
        self.link_seen_ns: dict[tuple[str, int], int] = {}
        """(camera, camera track id) -> when it was last observed."""
        self._next_id = 1
        self.merged: list[tuple[int, str, str]] = []
        """(t ns, kept id, folded id) for every merge (duplicates of one person)."""

    def _gate(self, track: _Track, t_ns: int) -> float:
        unseen_s = max(t_ns - track.last_ns, 0) / NS
        return min(self.params.match_m + self.params.walk_m_s * unseen_s, self.params.max_gate_m)

    def _at_entry(self, x: float, y: float) -> bool:
        return any(distance_to_segment((x, y), a, b) <= self.params.entry_zone_m for a, b in self.entry_lines)

    def _likeness(self, track: _Track, obs: CameraObservation) -> float | None:
        """Cosine of the observation's look with the track's, when both are known."""
        look = track.look(self.params.look_frames)
        if look is None or obs.appearance is None:
            return None
        return cosine(tuple(look), obs.appearance)

    def _may_join(self, track: _Track, obs: CameraObservation, t_ns: int) -> bool:
        """Whether an unlinked observation may continue `track` at all (before distances are compared)."""
        p = self.params
        if self._at_entry(obs.x, obs.y) and not self._at_entry(track.x, track.y):
            return False  # somebody coming in, not a shopper found again
        if t_ns - track.last_ns >= p.refind_after_s * NS:
            like = self._likeness(track, obs)
            if like is not None and like < p.look_min:
                return False  # unseen a while: only somebody who looks like them is them
        return True

    def step(self, t_ns: int, observations: list[CameraObservation]) -> list[FloorTrack]:
        """One tick: the latest observation of every camera track (one frame per camera). Returns the
        confirmed store tracks seen at this tick."""
        p = self.params
        assigned: dict[str, list[CameraObservation]] = {}

        # 1. camera tracks that already follow a store track, unless they jumped or changed looks
        unlinked: list[CameraObservation] = []
        for obs in observations:
            key = (obs.camera_id, obs.track_id)
            tid = self.links.get(key)
            track = self.tracks.get(tid) if tid is not None else None
            # a camera track back after a gap may be the camera tracker re-using a lost id for somebody
            # else in the same spot: it joins again like a new camera track would
            continuous = t_ns - self.link_seen_ns.get(key, t_ns) < p.refind_after_s * NS
            self.link_seen_ns[key] = t_ns
            if track is not None and continuous:
                ex, ey = track.predicted(t_ns)
                reach = p.link_break_m + p.walk_m_s * (t_ns - track.last_ns) / NS
                like = self._likeness(track, obs)
                entering = self._at_entry(obs.x, obs.y) and not self._at_entry(track.x, track.y)
                if (
                    math.hypot(obs.x - ex, obs.y - ey) <= reach
                    and (like is None or like >= p.look_break)
                    and not entering
                ):
                    assigned.setdefault(track.track_id, []).append(obs)
                    continue
            self.links.pop(key, None)
            unlinked.append(obs)
        # cameras linked to one track must agree on where that person is: when one shopper steps into
        # the spot another just left, a camera may follow the newcomer under the old id. The camera that
        # most other cameras confirm keeps the link, and of those the one nearest the track's expected
        # position (which an off camera has pulled towards itself); those far from it join anew.
        for tid, linked in list(assigned.items()):
            if len(linked) < 2:
                continue
            ex, ey = self.tracks[tid].predicted(t_ns)
            anchor = max(
                linked,
                key=lambda o: (_confirmations(o, observations, p.same_person_m), -math.hypot(o.x - ex, o.y - ey)),
            )
            kept = [o for o in linked if math.hypot(o.x - anchor.x, o.y - anchor.y) <= p.same_person_m]
            for obs in linked:
                if all(obs is not k for k in kept):
                    self.links.pop((obs.camera_id, obs.track_id), None)
                    unlinked.append(obs)
            assigned[tid] = kept

        # 2. hand-over and re-finding: unlinked camera tracks to store tracks, one per camera per track,
        # at least cost in floor distance plus unlikeness
        for _ in range(4):  # a track may gain one camera per round
            if not unlinked or not self.tracks:
                break
            ids = list(self.tracks)
            where = []
            for tid in ids:
                seen = assigned.get(tid)
                if seen:
                    where.append(_mean(seen))
                else:
                    where.append(self.tracks[tid].predicted(t_ns))
            big = 1e6
            cost = np.full((len(unlinked), len(ids)), big)
            for i, obs in enumerate(unlinked):
                for j, tid in enumerate(ids):
                    track = self.tracks[tid]
                    if any(o.camera_id == obs.camera_id for o in assigned.get(tid, [])):
                        continue
                    d = math.hypot(obs.x - where[j][0], obs.y - where[j][1])
                    # seen by another camera this tick: this camera must agree with it
                    gate = p.same_person_m if assigned.get(tid) else self._gate(track, t_ns)
                    if d <= gate and self._may_join(track, obs, t_ns):
                        like = self._likeness(track, obs)
                        cost[i, j] = d + (p.look_weight_m * (1.0 - like) if like is not None else 0.0)
            rows, cols = linear_sum_assignment(cost)
            taken = [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if cost[i, j] < big]
            if not taken:
                break
            for i, j in taken:
                obs = unlinked[i]
                assigned.setdefault(ids[j], []).append(obs)
                self.links[(obs.camera_id, obs.track_id)] = ids[j]
            used = {i for i, _ in taken}
            unlinked = [o for k, o in enumerate(unlinked) if k not in used]

        # 3. new people: group what is left, one observation per camera per person
        groups: list[list[CameraObservation]] = []
        for obs in sorted(unlinked, key=lambda o: -o.confidence):
            best: list[CameraObservation] | None = None
            best_d = p.same_person_m
            for g in groups:
                if any(o.camera_id == obs.camera_id for o in g):
                    continue
                cx, cy = _mean(g)
                d = math.hypot(obs.x - cx, obs.y - cy)
                if d < best_d:
                    best, best_d = g, d
            if best is None:
                groups.append([obs])
            else:
                best.append(obs)
        for g in groups:
            tid = f"{self.id_prefix}{self._next_id}"
            self._next_id += 1
            x, y = _mean(g)
            self.tracks[tid] = _Track(tid, x, y, first_ns=t_ns, last_ns=t_ns)
            assigned[tid] = g
            for obs in g:
                self.links[(obs.camera_id, obs.track_id)] = tid

        # 4. update what was seen
        crowded = _crowded(observations, p.clean_m)
        for tid, seen in assigned.items():
            track = self.tracks[tid]
            x, y = _mean(seen)
            if track.hits and t_ns > track.last_ns:
                dt = (t_ns - track.last_ns) / NS
                a = p.velocity_smoothing
                track.vx = (1 - a) * track.vx + a * (x - track.x) / dt
                track.vy = (1 - a) * track.vy + a * (y - track.y) / dt
                speed = math.hypot(track.vx, track.vy)
                if speed > p.walk_m_s:  # a projection jump is not a sprint
                    track.vx, track.vy = track.vx * p.walk_m_s / speed, track.vy * p.walk_m_s / speed
            track.x, track.y, track.last_ns = x, y, t_ns
            track.hits += 1
            track.confidence = max(o.confidence for o in seen)
            track.cameras = tuple(sorted({o.camera_id for o in seen}))
            looks = [o.appearance for o in seen if o.appearance is not None]
            track.appearance = _unit_mean(looks) if looks else None
            for o in seen:
                if o.appearance is not None and id(o) not in crowded and track.look_count < p.look_keep:
                    vec = np.asarray(o.appearance)
                    track.look_sum = vec if track.look_sum is None else track.look_sum + vec
                    track.look_count += 1

        self._merge_duplicates(t_ns, assigned)
        self._end_lost(t_ns)
        out = [
            FloorTrack(t.track_id, t.x, t.y, t.confidence, t.cameras, t.appearance)
            for t in self.tracks.values()
            if t.last_ns == t_ns and t.hits >= p.min_hits
        ]
        return sorted(out, key=lambda f: f.track_id)

    def _merge_duplicates(self, t_ns: int, assigned: dict[str, list[CameraObservation]]) -> None:
        p = self.params
        seen = [self.tracks[tid] for tid in assigned if tid in self.tracks]
        for i, a in enumerate(seen):
            for b in seen[i + 1 :]:
                close = math.hypot(a.x - b.x, a.y - b.y) < p.merge_m
                # a camera that sees both at once sees two people
                apart = bool(set(a.cameras) & set(b.cameras))
                if close and not apart:
                    a.near[b.track_id] = a.near.get(b.track_id, 0) + 1
                else:
                    a.near.pop(b.track_id, None)
                if a.near.get(b.track_id, 0) >= p.merge_ticks:
                    self._fold(t_ns, a, b)
        for t in self.tracks.values():
            t.near = {k: v for k, v in t.near.items() if k in self.tracks}

    def _fold(self, t_ns: int, a: _Track, b: _Track) -> None:
        keep, drop = (a, b) if a.first_ns <= b.first_ns else (b, a)
        if drop.track_id not in self.tracks or keep.track_id not in self.tracks:
            return
        for key, tid in list(self.links.items()):
            if tid == drop.track_id:
                self.links[key] = keep.track_id
        keep.hits = max(keep.hits, drop.hits)
        keep.cameras = tuple(sorted(set(keep.cameras) | set(drop.cameras)))
        del self.tracks[drop.track_id]
        self.merged.append((t_ns, keep.track_id, drop.track_id))

    def _end_lost(self, t_ns: int) -> None:
        limit = self.params.max_coast_s * NS
        ended = {tid for tid, t in self.tracks.items() if t_ns - t.last_ns > limit}
        for tid in ended:
            del self.tracks[tid]
        if ended:
            self.links = {k: v for k, v in self.links.items() if v not in ended}
        # camera tracks long gone: forget them (their ids may come back, and join anew)
        self.link_seen_ns = {k: v for k, v in self.link_seen_ns.items() if t_ns - v <= limit}


def _confirmations(obs: CameraObservation, observations: list[CameraObservation], within_m: float) -> int:
    """How many other cameras see somebody within `within_m` of `obs` at this tick."""
    return len(
        {
            o.camera_id
            for o in observations
            if o.camera_id != obs.camera_id and math.hypot(o.x - obs.x, o.y - obs.y) <= within_m
        }
    )


def _crowded(observations: list[CameraObservation], within_m: float) -> set[int]:
    """Ids (`id()`) of observations with another of the same camera within `within_m`."""
    out: set[int] = set()
    for i, a in enumerate(observations):
        for b in observations[i + 1 :]:
            if a.camera_id == b.camera_id and math.hypot(a.x - b.x, a.y - b.y) < within_m:
                out |= {id(a), id(b)}
    return out


def _unit_mean(looks: list[Embedding]) -> Embedding:
    total = np.sum(np.asarray(looks), axis=0)
    norm = float(np.linalg.norm(total))
    return tuple(float(v) for v in (total / norm if norm > 0 else total))


def _mean(observations: list[CameraObservation]) -> tuple[float, float]:
    w = [max(o.confidence, 1e-3) for o in observations]
    total = sum(w)
    return (
        sum(o.x * wi for o, wi in zip(observations, w, strict=True)) / total,
        sum(o.y * wi for o, wi in zip(observations, w, strict=True)) / total,
    )

"""Who is where: store-level tracks bound to visits, and events associated with visits.

A visit starts with the gate's decision to open for a scanned code; the next tracks that appear at
that entry gate belong to it (a party: as many as its size). Trackers lose people and give them new
ids (fragments): a track that appears away from the entry continues the person who vanished nearest
to it a moment before. A person whose track ends at an exit gate has left.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from store_edge.layout.model import Gate, StoreLayout

NS = 1_000_000_000


@dataclass(frozen=True)
class ShopperParams:
    entry_radius_m: float = 1.5
    """A new track this close to an entry gate is someone coming in."""
    exit_radius_m: float = 1.5
    bind_window_s: float = 20.0
    """A code scanned this long ago may still bind people entering."""
    lost_after_s: float = 3.5
    """A track unseen this long has ended (longer than the tracker's usual dropouts)."""
    fragment_radius_m: float = 3.0
    fragment_window_s: float = 8.0
    reach_m: float = 0.5
    """Where the person who reaches stands: this far out from the shelf front..."""
    body_std_m: float = 0.25
    """...give or take this much, out from the front and along it."""
    hand_std_m: float = 0.12
    hand_bonus: float = 3.0
    """Log-odds a reaching hand at the plate adds over a body standing in front of it."""
    nobody_distance_m: float = 1.4
    """'Nobody' (staff, a restock, a glitch) scores like a shopper standing this far away."""
    history_s: float = 120.0


@dataclass
class TrackHistory:
    track_id: str
    first_ns: int
    first_xy: tuple[float, float]
    samples: deque[tuple[int, float, float, tuple[float, float, float] | None]] = field(default_factory=deque)

    @property
    def last_ns(self) -> int:
        return self.samples[-1][0]

    @property
    def last_xy(self) -> tuple[float, float]:
        return (self.samples[-1][1], self.samples[-1][2])


@dataclass
class Person:
    """One shopper of a visit; `track_id` changes when the tracker loses and re-finds them."""

    visit_id: str
    track_id: str | None
    exited_ns: int | None = None
    lost_ns: int | None = None
    lost_xy: tuple[float, float] | None = None


@dataclass
class Visit:
    visit_id: str
    account_id: str | None
    party_size: int
    opened_ns: int
    people: list[Person] = field(default_factory=list)

    @property
    def all_exited(self) -> bool:
        return len(self.people) >= self.party_size and all(p.exited_ns is not None for p in self.people)

    @property
    def exit_ns(self) -> int | None:
        return max((p.exited_ns or 0) for p in self.people) if self.all_exited else None


@dataclass(frozen=True)
class ShopperCandidate:
    visit_id: str | None
    probability: float
    distance_m: float | None
    track_id: str | None


def _distance_to_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    seg2 = dx * dx + dy * dy
    t = 0.0 if seg2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / seg2))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))


def _gate_distance(p: tuple[float, float], gate: Gate) -> float:
    return _distance_to_segment(p, gate.line[0], gate.line[1])


class ShopperRegistry:
    def __init__(self, store: StoreLayout, params: ShopperParams | None = None) -> None:
        self.store = store
        self.params = params or ShopperParams()
        self.tracks: dict[str, TrackHistory] = {}
        self.person_of_track: dict[str, Person] = {}
        self.visits: dict[str, Visit] = {}
        self.waiting: deque[Visit] = deque()
        self.alerts: list[tuple[int, str]] = []
        self.entries = store.gates_of_kind("entry")
        self.exits = store.gates_of_kind("exit")

    # --- gate ----------------------------------------------------------------------------------
    def open_visit(self, t_ns: int, visit_id: str, account_id: str | None, party_size: int) -> Visit:
        visit = self.visits.get(visit_id)
        if visit is None:
            visit = Visit(visit_id, account_id, party_size, t_ns)
            self.visits[visit_id] = visit
            self.waiting.append(visit)
        return visit

    # --- tracks --------------------------------------------------------------------------------
    def observe(self, t_ns: int, tracks: list[tuple[str, float, float, tuple[float, float, float] | None]]) -> None:
        p = self.params
        for track_id, x, y, hand in tracks:
            hist = self.tracks.get(track_id)
            if hist is None:
                hist = self.tracks[track_id] = TrackHistory(track_id, t_ns, (x, y))
                self._bind_new_track(hist)
            hist.samples.append((t_ns, x, y, hand))
            while hist.samples and hist.samples[0][0] < t_ns - p.history_s * NS:
                hist.samples.popleft()
            person = self.person_of_track.get(track_id)
            if person is not None and person.lost_ns is not None:
                person.lost_ns = person.lost_xy = None  # back after a dropout, same id
        self._end_stale_tracks(t_ns)

    def _bind_new_track(self, hist: TrackHistory) -> None:
        p = self.params
        xy = hist.first_xy
        at_entry = any(_gate_distance(xy, g) <= p.entry_radius_m for g in self.entries)
        if at_entry:
            # people go through in the order codes are scanned, a party together: the newest scan
            # that still has room is the one this person came in on
            while self.waiting and (
                hist.first_ns - self.waiting[0].opened_ns > p.bind_window_s * NS
                or len(self.waiting[0].people) >= self.waiting[0].party_size
            ):
                self.waiting.popleft()
            open_now = [v for v in self.waiting if v.opened_ns <= hist.first_ns and len(v.people) < v.party_size]
            if open_now:
                visit = open_now[-1]
                person = Person(visit.visit_id, hist.track_id)
                visit.people.append(person)
                self.person_of_track[hist.track_id] = person
                return
        # a fragment: continue the person who vanished nearest to here a moment ago
        best: tuple[float, Person] | None = None
        for visit in self.visits.values():
            for person in visit.people:
                if person.lost_ns is None or person.lost_xy is None:
                    continue
                age = hist.first_ns - person.lost_ns
                d = math.dist(person.lost_xy, xy)
                if 0 <= age <= p.fragment_window_s * NS and d <= p.fragment_radius_m and (best is None or d < best[0]):
                    best = (d, person)
        if best is None:
            # a current person whose track is momentarily missing (the tracker re-issued an id); not one
            # who was last seen at an exit (they left), and only as far as a person walks in the gap
            for visit in self.visits.values():
                for person in visit.people:
                    if person.exited_ns is not None or person.track_id is None:
                        continue
                    old = self.tracks.get(person.track_id)
                    if old is None or hist.first_ns - old.last_ns < 0.25 * NS:
                        continue
                    if any(_gate_distance(old.last_xy, g) <= p.exit_radius_m for g in self.exits):
                        continue
                    gap_s = (hist.first_ns - old.last_ns) / NS
                    d = math.dist(old.last_xy, xy)
                    if d > min(p.fragment_radius_m, 0.5 + 1.8 * gap_s):
                        continue
                    if best is None or d < best[0]:
                        best = (d, person)
        if best is not None:
            person = best[1]
            person.track_id = hist.track_id
            person.lost_ns = person.lost_xy = None
            self.person_of_track[hist.track_id] = person
        elif at_entry:
            self.alerts.append((hist.first_ns, f"track {hist.track_id} entered without a scanned code (tailgating?)"))

    def _end_stale_tracks(self, now_ns: int) -> None:
        p = self.params
        for track_id, person in list(self.person_of_track.items()):
            hist = self.tracks.get(track_id)
            if hist is None or person.track_id != track_id or person.exited_ns is not None:
                continue
            if now_ns - hist.last_ns < p.lost_after_s * NS:
                continue
            if any(_gate_distance(hist.last_xy, g) <= p.exit_radius_m for g in self.exits):
                person.exited_ns = hist.last_ns
            elif person.lost_ns is None:
                person.lost_ns = hist.last_ns
                person.lost_xy = hist.last_xy

    def visit_of_track(self, track_id: str) -> str | None:
        person = self.person_of_track.get(track_id)
        return person.visit_id if person else None

    def open_visits(self) -> list[Visit]:
        return [v for v in self.visits.values() if not v.all_exited]

    # --- association ---------------------------------------------------------------------------
    def associate(self, plate_ids: list[str], start_ns: int, end_ns: int) -> list[ShopperCandidate]:
        """P(visit | event) from where people stood and reached while the plates changed."""
        p = self.params
        geo = sorted((self.store.plate_geometry[pid] for pid in plate_ids), key=lambda g: g.index_on_shelf)
        front_a = geo[0].front_left
        front_b = geo[-1].front_right
        shelf_z = geo[0].center[2]
        normal = self.store.gondolas_by_id[geo[0].gondola_id].aisle_normal
        lo, hi = start_ns - NS // 2, end_ns + NS // 2
        scores: dict[str | None, float] = {}
        details: dict[str | None, tuple[float, str | None]] = {}
        for hist in self.tracks.values():
            if hist.last_ns < lo or hist.first_ns > hi:
                continue
            # The one who acted stands there throughout; a passer-by is close only for a moment. So the
            # body term is averaged over the event, and a hand seen at the plates' front adds to it.
            body_logs: list[float] = []
            hand_log = -math.inf
            best_d = math.inf
            for t, x, y, hand in hist.samples:
                if t < lo or t > hi:
                    continue
                d = _distance_to_segment((x, y), front_a, front_b)
                out = (x - front_a[0]) * normal[0] + (y - front_a[1]) * normal[1]
                along = math.sqrt(max(0.0, d * d - out * out))
                if out < -0.1:
                    out -= 2.0  # behind the shelf front: the other aisle, cannot reach these plates
                body_logs.append(-0.5 * ((out - p.reach_m) / p.body_std_m) ** 2 - 0.5 * (along / p.body_std_m) ** 2)
                best_d = min(best_d, d)
                if hand is not None:
                    dh = math.hypot(_distance_to_segment((hand[0], hand[1]), front_a, front_b), hand[2] - shelf_z)
                    hand_log = max(hand_log, -0.5 * (dh / p.hand_std_m) ** 2 + p.hand_bonus)
            if not body_logs:
                continue
            best_log = max(sum(body_logs) / len(body_logs), hand_log)
            visit_id = self.visit_of_track(hist.track_id)
            # people of one party share a cart: their evidence adds up, the best track names it
            scores[visit_id] = scores.get(visit_id, 0.0) + math.exp(best_log)
            if visit_id not in details or best_d < (details[visit_id][0]):
                details[visit_id] = (best_d, hist.track_id)
        nobody = math.exp(-0.5 * ((p.nobody_distance_m - p.reach_m) / p.body_std_m) ** 2)
        scores[None] = scores.get(None, 0.0) + nobody
        total = sum(scores.values())
        out = [
            ShopperCandidate(v, s / total, details.get(v, (None, None))[0], details.get(v, (None, None))[1])
            for v, s in scores.items()
        ]
        return sorted(out, key=lambda c: -c.probability)

"""Who is where: store-level tracks bound to visits, and events associated with visits.

A visit starts with the gate's decision to open for a scanned code; the next tracks that appear at
that entry gate belong to it (a party: as many as its size). Trackers lose people and give them new
ids (fragments): a track that appears away from the entry continues the person who vanished nearest
to it a moment before. A person whose track ends at an exit gate has left. A person the tracker lost for
good (no fragment took them up) has left when the exit's person counter counts someone nobody tracked
leaving, or at the latest `lost_exit_s` after they were last seen: a visit must not stay open because a
camera lost its shopper on the way out.

Trackers also swap ids when people pass close by. Where tracks carry a re-identification embedding,
each person's look is learnt while they walk alone. People of different visits who come close form a
crowd (an encounter, growing as others join); once a track of it is alone again, the pairing of the
crowd's tracks with its people that fits their looks best says whom each track follows now. Ids are
moved back from the moment the embeddings say the hand-over happened (`corrections` tells the engine
which events to revisit).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from store_edge.layout.model import Gate, PlateGeometry, StoreLayout, distance_to_segment

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
    side_reach: float = 0.35
    side_reach_m: float = 0.9
    """Someone beside the spot, up to `side_reach_m` along the shelf, may be reaching sideways past whoever
    stands in front (shoulder to shoulder, nobody stands inside another): their likelihood along the shelf
    does not fall below this share of a person right in front. Fitted on simulated seeds 11-14: with two
    people at a plate, the one in front took the item 3 times in 4."""
    hand_std_m: float = 0.07
    """A seen hand's distance from where the weight changed (pose error and the hand's own size)."""
    hand_bonus: float = 3.0
    """Log-odds a reaching hand at the plate adds over a body standing in front of it."""
    hand_lead_s: float = 0.3
    hand_lag_s: float = 0.1
    """A hand counts for an event while it may be the one changing the plates: from just before the
    change starts (hand in, then grip) until the plates settle. Reports outside belong to other reaches."""
    hand_elsewhere_m: float = 0.5
    hand_elsewhere: float = 0.1
    """Likelihood factor for a person whose hand was seen in a shelf meanwhile, but away from the plates
    that changed: they were reaching for something else."""
    departure_window_s: float = 12.0
    departure_m: float = 1.0
    departure_odds: tuple[tuple[float, float], ...] = ((1.5, 0.2), (6.0, 3.0), (math.inf, 0.4))
    """Who walked off: when each candidate first stood `departure_m` from the spot after an event weighs
    in, as odds (taker vs bystander) per band of seconds after the plates settled; the last band is
    staying on. The one who took an item moves on a few seconds later; someone who leaves at once was
    passing by or had finished their own reach; someone who stays on is still choosing. A track that ends
    first tells nothing. The engine asks again `departure_window_s` after the event. Fitted on simulated
    seeds 11-14 (not the benchmark's)."""
    another_reach_odds: float = 0.3
    """Odds that someone made an event when, without walking off in between, they surely made another
    event within `departure_window_s` of it, and were surer of that one: people stand at a shelf for a
    reach, and a bystander is usually there for their own. Weighed when the engine asks again who walked
    off; fitted on simulated seeds 11-14 (0.3: 7 more units right and 1 more wrong than without; 0.5: 5
    and 0; 0.15: 9 and 2)."""
    nobody_distance_m: float = 1.4
    """'Nobody' (staff, a restock, a glitch) scores like a shopper standing this far away."""
    history_s: float = 120.0
    encounter_m: float = 0.8
    """Two people this close may leave with each other's track ids."""
    clean_m: float = 0.8
    """An embedding counts as clean only when nobody else is this close (a neighbour bleeds into the crop)."""
    look_frames: int = 30
    """Clean frames that make a person's look (then it is kept)."""
    verdict_frames: int = 8
    """Clean frames of each track after an encounter before deciding whether the ids swapped."""
    verdict_wait_s: float = 30.0
    """After the last contact in a crowd, how long its tracks may take to show their looks."""
    fragment_fit: float = 0.6
    """A fragment is moved to another person only if its look fits theirs at least this well."""
    unseen_keeps: float = 0.2
    """What keeping its person is worth (as a cosine) for a track not yet seen alone again."""
    unknown_look_fits: float = 0.45
    """How well a person whose look was never learnt (in company from the entry on, as people standing
    shoulder to shoulder at a shelf are) is taken to fit any track: below a person's own look (0.8-0.95),
    above a stranger's (about 0). A track that shows a known person's look is theirs even when the track
    it came from followed such a person."""
    swap_margin: float = 0.2
    """How much better (sum of cosines) the swapped pairing must fit before ids are swapped back."""
    second_track_s: float = 2.0
    second_track_m: float = 1.5
    """A track that follows nobody, started at most this long before a person's track ended and this close
    to it then, is the same person seen twice by the tracker (see `_take_up_a_second_track`)."""
    passage_window_s: float = 3.0
    """An exit counter's passage this close in time to a tracked person's exit is theirs."""
    double_count_s: float = 0.3
    """A passage this soon after another that no tracked exit explains is the counter counting one person
    twice (its known fault), not a lost person leaving. Two tracked people may pass closer together."""
    walk_speed_m_s: float = 1.0
    """How fast a lost person walks to the exit: tells which lost person a passage nobody made was."""
    brisk_walk_m_s: float = 1.8
    """How far a person whose track the tracker dropped a moment ago may have gone: 0.5 m plus this per
    second of the gap."""
    lost_exit_s: float = 120.0
    """A person lost this long (far past any fragment's window) has left unseen: their visit closes."""


Hand = tuple[float, float, float]
Sample = tuple[int, float, float, Hand | None]
"""A track sample: when (ns), where on the floor (x, y), and the reaching hand where seen."""
Embedding = tuple[float, ...]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrackObservation:
    """One track in one tracker message."""

    track_id: str
    x: float
    y: float
    hand: Hand | None = None
    appearance: tuple[float, ...] | None = None


class LookAverage:
    """The running mean of unit-length embeddings."""

    def __init__(self) -> None:
        self.total: list[float] = []
        self.count = 0

    def add(self, v: tuple[float, ...]) -> None:
        if not self.total:
            self.total = [0.0] * len(v)
        if len(v) != len(self.total):
            return  # a tracker reconfigured mid-visit: ignore embeddings of another length
        self.total = [a + b for a, b in zip(self.total, v, strict=True)]
        self.count += 1

    def cosine(self, other: LookAverage) -> float:
        if not self.count or not other.count or len(self.total) != len(other.total):
            return 0.0
        dot = sum(a * b for a, b in zip(self.total, other.total, strict=True))
        na = math.sqrt(sum(a * a for a in self.total))
        nb = math.sqrt(sum(b * b for b in other.total))
        return dot / (na * nb) if na and nb else 0.0

    def unit(self) -> FloatArray:
        v = np.array(self.total)
        n = float(np.linalg.norm(v))
        return v / n if n else v


@dataclass
class Encounter:
    """Tracks of different visits that came close, directly or through each other (a crowd). Once a
    track is apart from everyone, its look since its last close contact says whom it follows now."""

    frames: dict[str, list[tuple[int, Embedding]]] = field(default_factory=dict)
    """Per track of the group: its embeddings since it first came close to another of the group."""
    looks: dict[str, LookAverage] = field(default_factory=dict)
    """Per track of the group: clean frames since it was last close to another of the group."""
    last_contact_ns: int = 0

    def forget(self, track_id: str) -> None:
        del self.looks[track_id]
        del self.frames[track_id]


@dataclass
class TrackHistory:
    track_id: str
    first_ns: int
    first_xy: tuple[float, float]
    samples: deque[Sample] = field(default_factory=deque)
    bindings: list[tuple[int, str]] = field(default_factory=list)
    """(from ns, visit id): whose track this was when; rewritten when a swap is undone."""
    unconfirmed: LookAverage | None = None
    """A fragment bound to whoever vanished nearest: its look, until it confirms whom it follows."""

    @property
    def last_ns(self) -> int:
        return self.samples[-1][0]

    @property
    def last_xy(self) -> tuple[float, float]:
        return (self.samples[-1][1], self.samples[-1][2])


def samples_between(samples: deque[Sample], lo_ns: int, hi_ns: int) -> list[Sample]:
    """A track's samples from `lo_ns` to `hi_ns` (inclusive). A track keeps minutes of samples and an
    event's window is seconds long: found by bisection instead of a walk through all of them (a
    re-identification that re-decides every event since a swap asked this of every track for every
    event: 100-300 ms in which the store's messages waited). Samples are in time order: the merge hands
    the tracker's messages on in order."""
    start = bisect.bisect_left(samples, lo_ns, key=_sample_time)
    end = bisect.bisect_right(samples, hi_ns, lo=start, key=_sample_time)
    return [samples[i] for i in range(start, end)]  # a deque's items are reached from its nearer end


def _sample_time(sample: Sample) -> int:
    return sample[0]


def _body_terms(
    windows: list[list[Sample]],
    front_a: tuple[float, float],
    front_b: tuple[float, float],
    normal: NDArray[np.float64],
    params: ShopperParams,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per window of a track's samples: the mean log-likelihood of standing where they stood for someone
    reaching into the shelf front a-b (`reach_m` out from it, give or take `body_std_m` out and along, or
    beside it reaching sideways),
    and the nearest they came to the front. All tracks at once: in a busy store an event has dozens of
    tracks around it, and the engine asks again for every event since a re-identification."""
    if not windows:
        return np.zeros(0), np.zeros(0)
    counts = np.array([len(w) for w in windows])
    # (t, x, y, hand) rows, hand dropped: numpy reads the tuples' numbers in one pass
    txy = np.array([s[:3] for w in windows for s in w], dtype=float)
    xs, ys = txy[:, 1], txy[:, 2]
    dx, dy = front_b[0] - front_a[0], front_b[1] - front_a[1]
    seg2 = dx * dx + dy * dy
    t = np.zeros_like(xs) if seg2 == 0 else np.clip(((xs - front_a[0]) * dx + (ys - front_a[1]) * dy) / seg2, 0, 1)
    d = np.hypot(xs - (front_a[0] + t * dx), ys - (front_a[1] + t * dy))
    out = (xs - front_a[0]) * normal[0] + (ys - front_a[1]) * normal[1]
    along = np.sqrt(np.maximum(0.0, d * d - out * out))
    out = np.where(out < -0.1, out - 2.0, out)  # behind the shelf front: the other aisle, cannot reach it
    beside = np.where(along < params.side_reach_m, params.side_reach, 0.0)
    logs = -0.5 * ((out - params.reach_m) / params.body_std_m) ** 2 + np.log(
        np.exp(-0.5 * (along / params.body_std_m) ** 2) + beside
    )
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.add.reduceat(logs, starts) / counts, np.minimum.reduceat(d, starts)


@dataclass
class Person:
    """One shopper of a visit; `track_id` changes when the tracker loses and re-finds them."""

    visit_id: str
    track_id: str | None
    exited_ns: int | None = None
    lost_ns: int | None = None
    lost_xy: tuple[float, float] | None = None
    look: LookAverage = field(default_factory=LookAverage)
    counted: bool = False
    """An exit counter's passage was matched to this person's exit."""


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


def _gate_distance(p: tuple[float, float], gate: Gate) -> float:
    return distance_to_segment(p, gate.line[0], gate.line[1])


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
        self.encounters: list[Encounter] = []
        self.corrections: list[tuple[int, tuple[str, ...]]] = []
        """(since ns, the tracks whose people were moved): ids found swapped or fragments bound to the wrong
        person; the engine asks again about events since then."""
        self.passages: deque[int] = deque()
        """When the exit counters counted someone leaving, until matched with a tracked exit."""
        self.lost_checked_s = 0
        """The second lost people were last checked for having left unseen (once a second is enough)."""
        self.last_passage_ns = 0

    def __setstate__(self, state: dict[str, object]) -> None:
        """A registry saved (a worker's snapshot) before exit passages were used starts with none."""
        self.__dict__.update(state)
        self.__dict__.setdefault("passages", deque())
        self.__dict__.setdefault("lost_checked_s", 0)
        self.__dict__.setdefault("last_passage_ns", 0)

    # --- gate ----------------------------------------------------------------------------------
    def open_visit(self, t_ns: int, visit_id: str, account_id: str | None, party_size: int) -> Visit:
        visit = self.visits.get(visit_id)
        if visit is None:
            visit = Visit(visit_id, account_id, party_size, t_ns)
            self.visits[visit_id] = visit
            self.waiting.append(visit)
        return visit

    def passage(self, t_ns: int, gate_id: str, direction: str) -> None:
        """The gate's person counter: someone went through. Only leaving through an exit is used."""
        if direction != "out" or all(g.id != gate_id for g in self.exits):
            return
        self.passages.append(t_ns)

    def _exits_nobody_was_seen_making(self, now_ns: int) -> None:
        """Each passage, once the tracks around it have had time to end, is matched with a tracked exit
        near it in time; one that matches none was a person the tracker had lost: the lost person who,
        walking from where they vanished, would reach the exit nearest that time. A person lost longer
        than `lost_exit_s` has left too, when they were last seen (the counter can miss people)."""
        p = self.params
        settle_ns = (p.lost_after_s + p.passage_window_s) * NS  # the tracks around a passage have ended
        due = bool(self.passages) and now_ns - self.passages[0] >= settle_ns
        if not due and now_ns // NS == self.lost_checked_s:
            return
        self.lost_checked_s = now_ns // NS
        window_ns = p.passage_window_s * NS
        # people still in, and those whose exit may explain a passage still to be matched
        horizon_ns = (self.passages[0] if self.passages else now_ns) - window_ns
        people = [
            person
            for visit in self.visits.values()
            if not visit.all_exited or (visit.exit_ns or 0) >= horizon_ns
            for person in visit.people
        ]
        while self.passages and now_ns - self.passages[0] >= settle_ns:
            t = self.passages.popleft()
            doubled = t - self.last_passage_ns < p.double_count_s * NS
            self.last_passage_ns = t
            seen = [
                q for q in people if q.exited_ns is not None and not q.counted and abs(q.exited_ns - t) <= window_ns
            ]
            if seen:
                min(seen, key=lambda q: abs((q.exited_ns or 0) - t)).counted = True
                continue
            lost = [q for q in people if q.exited_ns is None and q.lost_ns is not None and q.lost_ns <= t + window_ns]
            if lost and not doubled:
                person = min(lost, key=lambda q: abs((t - (q.lost_ns or 0)) / NS - self._walk_to_exit_s(q)))
                person.exited_ns = t
                person.counted = True
        for person in people:
            lost_ns = person.lost_ns
            if person.exited_ns is None and lost_ns is not None and now_ns - lost_ns >= p.lost_exit_s * NS:
                person.exited_ns = lost_ns

    def _walk_to_exit_s(self, person: Person) -> float:
        if person.lost_xy is None:
            return 0.0
        return min(_gate_distance(person.lost_xy, g) for g in self.exits) / self.params.walk_speed_m_s

    # --- tracks --------------------------------------------------------------------------------
    def observe(self, t_ns: int, tracks: list[TrackObservation]) -> None:
        p = self.params
        for obs in tracks:
            hist = self.tracks.get(obs.track_id)
            if hist is None:
                hist = self.tracks[obs.track_id] = TrackHistory(obs.track_id, t_ns, (obs.x, obs.y))
                self._bind_new_track(hist)
            hist.samples.append((t_ns, obs.x, obs.y, obs.hand))
            while hist.samples and hist.samples[0][0] < t_ns - p.history_s * NS:
                hist.samples.popleft()
            person = self.person_of_track.get(obs.track_id)
            if person is not None and person.lost_ns is not None:
                person.lost_ns = person.lost_xy = None  # back after a dropout, same id
        self._reidentify(t_ns, tracks)
        self._end_stale_tracks(t_ns)
        self._exits_nobody_was_seen_making(t_ns)

    def _bind(self, hist: TrackHistory, person: Person, since_ns: int) -> None:
        person.track_id = hist.track_id
        self.person_of_track[hist.track_id] = person
        hist.bindings = [b for b in hist.bindings if b[0] < since_ns] + [(since_ns, person.visit_id)]

    # --- re-identification -----------------------------------------------------------------------
    def _reidentify(self, t_ns: int, tracks: list[TrackObservation]) -> None:
        p = self.params
        bound = [(o, person) for o in tracks if (person := self._current_person(o.track_id)) is not None]
        if not any(o.appearance for o, _ in bound):
            return
        crowded: set[str] = set()
        for i, (a, pa) in enumerate(bound):
            for b, pb in bound[i + 1 :]:
                d = math.hypot(a.x - b.x, a.y - b.y)
                if d < p.clean_m:
                    crowded |= {a.track_id, b.track_id}
                if d < p.encounter_m and pa.visit_id != pb.visit_id:
                    self._meet(t_ns, a.track_id, b.track_id)
        in_encounter = {t for e in self.encounters for t in e.looks}
        for o, person in bound:
            # a person's look is learnt only from clean frames while no swap may be pending
            clean = o.track_id not in crowded and o.track_id not in in_encounter
            hist = self.tracks[o.track_id]
            if o.appearance and clean and hist.unconfirmed is not None:
                hist.unconfirmed.add(o.appearance)
                if hist.unconfirmed.count >= p.verdict_frames:
                    self._confirm_fragment(t_ns, hist, person)
            elif o.appearance and clean and person.look.count < p.look_frames:
                person.look.add(o.appearance)
        where = {o.track_id: o for o, _ in bound}
        for enc in list(self.encounters):
            for track_id in [t for t in enc.looks if t not in where and self._current_person(t) is None]:
                enc.forget(track_id)  # lost or handed to a fragment: nothing left to compare
            for track_id, look in enc.looks.items():
                seen = where.get(track_id)
                if seen is not None and seen.appearance:
                    enc.frames[track_id].append((t_ns, seen.appearance))
                    if track_id not in crowded:
                        look.add(seen.appearance)
            if any(look.count >= p.verdict_frames for look in enc.looks.values()):
                self._judge(enc)
            if len(enc.looks) < 2 or t_ns - enc.last_contact_ns > p.verdict_wait_s * NS:
                self.encounters.remove(enc)

    def _meet(self, t_ns: int, track_a: str, track_b: str) -> None:
        """Two tracks of different visits are close: they join one encounter (merging the groups either
        was in), and what each shows from now on is whom it follows after this contact."""
        groups = [e for e in self.encounters if track_a in e.looks or track_b in e.looks]
        enc = groups[0] if groups else Encounter()
        if not groups:
            self.encounters.append(enc)
        for other in groups[1:]:
            enc.frames.update(other.frames)
            enc.looks.update(other.looks)
            self.encounters.remove(other)
        for track_id in (track_a, track_b):
            enc.frames.setdefault(track_id, [])
            enc.looks[track_id] = LookAverage()
        enc.last_contact_ns = t_ns

    def _knows_look(self, person: Person) -> bool:
        """Whether this person's look was learnt from enough clean frames to judge tracks by."""
        return person.look.count >= self.params.verdict_frames

    def _current_person(self, track_id: str) -> Person | None:
        """The person this track follows now, if it is still their track."""
        person = self.person_of_track.get(track_id)
        if person is None or person.track_id != track_id or person.exited_ns is not None:
            return None
        return person

    def _judge(self, enc: Encounter) -> None:
        """Whom each track of a crowd follows: the pairing of its tracks with their people (each
        person's look learnt while alone) that fits best, once some tracks are apart again. A track
        still in the crowd keeps its person unless a track that is apart shows that person. Ids are
        moved only when that pairing fits clearly better than the tracker's own (ids rarely swap);
        tracks that are apart are then settled and leave the group."""
        p = self.params
        pairs = [(t, person) for t in enc.looks if (person := self._current_person(t)) is not None]
        known = [self._knows_look(person) for _, person in pairs]
        ready = [enc.looks[t].count >= p.verdict_frames for t, _ in pairs]
        if len(pairs) >= 2 and any(known):
            fit = np.array(
                [
                    [
                        (p.unseen_keeps if c == r else 0.0)
                        if not ready[r]
                        else person.look.cosine(enc.looks[t])
                        if known[c]
                        else p.unknown_look_fits
                        for c, (_, person) in enumerate(pairs)
                    ]
                    for r, (t, _) in enumerate(pairs)
                ]
            )
            rows, cols = linear_sum_assignment(-fit)
            moved = [(r, c) for r, c in zip(rows, cols, strict=True) if r != c]
            if any(ready[r] and known[c] and fit[r, c] < p.fragment_fit for r, c in moved):
                moved = []  # a track that fits nobody of the crowd well: no pairing can be trusted
            if any(not known[c] for _, c in moved) and not any(ready[r] and known[c] for r, c in moved):
                moved = []  # only a known look seen on another track can say a track changed people
            better = float(fit[rows, cols].sum()) > float(np.trace(fit)) + p.swap_margin
            if moved and better and any(pairs[r][1].visit_id != pairs[c][1].visit_id for r, c in moved):
                starts = []
                for r, c in moved:
                    (track_id, before), (from_track, person) = pairs[r], pairs[c]
                    start = self._handover_ns(enc.frames[track_id], before, person, track_id, from_track)
                    starts.append(start)
                    self._bind(self.tracks[track_id], person, start)
                since = min(starts)
                names = ", ".join(f"{pairs[r][0]} -> {pairs[c][1].visit_id}" for r, c in moved)
                self.corrections.append((since, tuple(pairs[r][0] for r, _ in moved)))
                self.alerts.append((since, f"tracks swapped ids in a crowd; undone: {names}"))
        people = [person for (_, person), k in zip(pairs, known, strict=True) if k]
        for track_id, look in list(enc.looks.items()):
            if look.count < p.verdict_frames:
                continue
            own = self._current_person(track_id)
            own_fit = own.look.cosine(look) if own is not None and self._knows_look(own) else None
            fits_other = own is not None and any(
                q is not own and q.look.cosine(look) > (p.unknown_look_fits if own_fit is None else own_fit)
                for q in people
            )
            if not fits_other and (own_fit is None or own_fit >= p.fragment_fit):
                enc.forget(track_id)
            # else it looks more like someone else of the crowd than its own person, or not like its own
            # person at all (it took up someone whose look is not known yet), though not enough to move
            # ids while the other track is unseen: keep it (its person's look learns nothing from it)
            # until that track is apart too

    def _confirm_fragment(self, t_ns: int, hist: TrackHistory, person: Person) -> None:
        """A fragment was bound to whoever vanished nearest; its look says whether that was right. If
        another person who is not visibly elsewhere fits it clearly better, it follows them from its
        start, and a fragment that had taken them (bound crosswise) gets this one's person."""
        p = self.params
        look, hist.unconfirmed = hist.unconfirmed, None
        assert look is not None
        if not self._knows_look(person):
            return
        own = person.look.cosine(look)
        best: tuple[float, Person] | None = None
        for visit in self.visits.values():
            for q in visit.people:
                if q is person or q.exited_ns is not None or not self._knows_look(q):
                    continue
                other = self.tracks.get(q.track_id) if q.track_id is not None else None
                if other is not None and t_ns - other.last_ns < NS and other.unconfirmed is None:
                    continue  # seen elsewhere right now on a track that follows them
                fit = q.look.cosine(look)
                if best is None or fit > best[0]:
                    best = (fit, q)
        if best is None or best[0] < p.fragment_fit or best[0] < own + p.swap_margin:
            return
        found = best[1]
        displaced = self.tracks.get(found.track_id) if found.track_id is not None else None
        if displaced is hist or (displaced is not None and t_ns - displaced.last_ns >= NS):
            displaced = None  # their old track has ended: nothing to hand this one's person to
        self._bind(hist, found, hist.first_ns)
        found.lost_ns = found.lost_xy = None
        moved = [f"{hist.track_id} -> {found.visit_id}"]
        if displaced is not None:
            self._bind(displaced, person, displaced.first_ns)
            moved.append(f"{displaced.track_id} -> {person.visit_id}")
        else:
            person.track_id = None
            person.lost_ns, person.lost_xy = hist.first_ns, hist.first_xy
        since = min(hist.first_ns, displaced.first_ns) if displaced is not None else hist.first_ns
        self.corrections.append((since, (hist.track_id, displaced.track_id) if displaced else (hist.track_id,)))
        self.alerts.append((since, "a lost track was continued by the wrong person; undone: " + ", ".join(moved)))

    def _handover_ns(
        self, frames: list[tuple[int, Embedding]], before: Person, after: Person, track_id: str, from_track: str
    ) -> int:
        """When a track stopped following `before` and began following `after`: the split of its
        embeddings since the crowd formed that fits the two looks best, at a moment it was close to the
        track `after` had (the tracker hands ids over only between people side by side)."""
        p = self.params
        if not frames:
            return self.tracks[track_id].first_ns
        times = np.array([t for t, _ in frames])
        emb = np.array([e for _, e in frames])
        fit_before, fit_after = (
            emb @ q.look.unit() if self._knows_look(q) else np.full(len(frames), p.unknown_look_fits)
            for q in (before, after)
        )
        # score of splitting before frame k: before's fit up to k, after's fit from k on
        score = np.concatenate(([0.0], np.cumsum(fit_before))) + np.concatenate(
            (np.cumsum(fit_after[::-1])[::-1], [0.0])
        )
        where_b = {t: (x, y) for t, x, y, _ in self.tracks[from_track].samples if t >= times[0]}
        close = {
            t
            for t, x, y, _ in self.tracks[track_id].samples
            if t in where_b and math.hypot(x - where_b[t][0], y - where_b[t][1]) < self.params.encounter_m
        }
        candidates = [k for k, t in enumerate(times) if int(t) in close] or list(range(len(frames)))
        k = max(candidates, key=lambda k: score[k])
        return int(times[k])

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
                self._bind(hist, person, hist.first_ns)
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
            # who was last seen at an exit (they left), and only as far as a person walks in the gap (a
            # dropout of up to 3 s at a brisk walk is 4-5 m); once gone long enough to count as lost, only
            # near where they vanished
            for visit in self.visits.values():
                for person in visit.people:
                    if person.exited_ns is not None or person.track_id is None:
                        continue
                    old = self.tracks.get(person.track_id)
                    if old is None or hist.first_ns - old.last_ns < 0.25 * NS:
                        continue
                    if self._ended_at_an_exit(old):
                        continue
                    gap_s = (hist.first_ns - old.last_ns) / NS
                    walk_m = 0.5 + p.brisk_walk_m_s * gap_s
                    d = math.dist(old.last_xy, xy)
                    if d > (walk_m if person.lost_ns is None else min(walk_m, p.fragment_radius_m)):
                        continue
                    if best is None or d < best[0]:
                        best = (d, person)
        if best is not None:
            self._continue_on(hist, best[1])
        elif at_entry:
            self.alerts.append((hist.first_ns, f"track {hist.track_id} entered without a scanned code (tailgating?)"))

    def _ended_at_an_exit(self, hist: TrackHistory) -> bool:
        """Whether this track was last seen at an exit gate (its person left, rather than was lost)."""
        return any(_gate_distance(hist.last_xy, g) <= self.params.exit_radius_m for g in self.exits)

    def _end_stale_tracks(self, now_ns: int) -> None:
        p = self.params
        for track_id, person in list(self.person_of_track.items()):
            hist = self.tracks.get(track_id)
            if hist is None or person.track_id != track_id or person.exited_ns is not None:
                continue
            if now_ns - hist.last_ns < p.lost_after_s * NS:
                continue
            if self._ended_at_an_exit(hist):
                person.exited_ns = hist.last_ns
            elif person.lost_ns is None:
                person.lost_ns = hist.last_ns
                person.lost_xy = hist.last_xy
                self._take_up_a_second_track(person, hist)

    def _take_up_a_second_track(self, person: Person, old: TrackHistory) -> None:
        """A tracker sometimes starts a second track for a person a moment before it drops the first (two
        cameras' views not merged at a hand-over): a track that follows nobody, started shortly before the
        person's track ended and close to where it was then, continues them (its look confirms it, as a
        fragment's). Without this the person is lost and what they take next is nobody's."""
        p = self.params
        best: tuple[float, TrackHistory] | None = None
        for hist in self.tracks.values():
            if hist is old or hist.track_id in self.person_of_track:
                continue
            if not (old.last_ns - p.second_track_s * NS <= hist.first_ns <= old.last_ns):
                continue
            then = samples_between(hist.samples, hist.first_ns, old.last_ns)
            d = math.dist((then[-1][1], then[-1][2]), old.last_xy)
            if d <= p.second_track_m and (best is None or d < best[0]):
                best = (d, hist)
        if best is None:
            return
        hist = best[1]
        self._continue_on(hist, person)
        self.corrections.append((hist.first_ns, (hist.track_id,)))

    def _continue_on(self, hist: TrackHistory, person: Person) -> None:
        """This track follows this person from its start: they are found again, and the track's look, once
        it has enough clean frames, confirms it (`_confirm_fragment`)."""
        person.lost_ns = person.lost_xy = None
        self._bind(hist, person, hist.first_ns)
        hist.unconfirmed = LookAverage()

    def visit_of_track(self, track_id: str, t_ns: int | None = None) -> str | None:
        """Whose track this is now, or was at `t_ns`."""
        hist = self.tracks.get(track_id)
        if hist is None or not hist.bindings:
            return None
        if t_ns is None:
            return hist.bindings[-1][1]
        current = hist.bindings[0][1]
        for since, visit_id in hist.bindings:
            if since > t_ns:
                break
            current = visit_id
        return current

    def open_visits(self) -> list[Visit]:
        return [v for v in self.visits.values() if not v.all_exited]

    # --- association ---------------------------------------------------------------------------
    def _along_shelf(self, plate_ids: Iterable[str]) -> list[PlateGeometry]:
        """The plates' geometry in their order along the shelf."""
        return sorted((self.store.plate_geometry[pid] for pid in plate_ids), key=lambda g: g.index_on_shelf)

    def had_a_say(self, track_ids: Iterable[str], plate_ids: Iterable[str], start_ns: int, end_ns: int) -> bool:
        """Whether any of these tracks came close enough to the plates during an event to weigh in on
        who made it. One that stayed `reach_m` + 10 `body_std_m` (3 m) away scores below e^-50 of a
        person standing at the front: whose it is changes no one's odds."""
        p = self.params
        geo = self._along_shelf(plate_ids)
        front_a, front_b = geo[0].front_left, geo[-1].front_right
        say_m = p.reach_m + 10 * p.body_std_m
        lo, hi = start_ns - NS // 2, end_ns + NS // 2  # the window `associate` reads
        for track_id in track_ids:
            hist = self.tracks.get(track_id)
            if hist is not None and any(
                distance_to_segment((x, y), front_a, front_b) < say_m
                for _, x, y, _ in samples_between(hist.samples, lo, hi)
            ):
                return True
        return False

    def associate(
        self,
        plate_deltas_g: dict[str, float],
        start_ns: int,
        end_ns: int,
        reach: tuple[float, int, int | None] | None = None,
        departed_by_ns: int | None = None,
    ) -> list[ShopperCandidate]:
        """P(visit | event) from where people stood and reached while the plates changed. `reach`: where
        along the shelf the one hand in the shelf meanwhile went in, when, and when it came out (light
        curtain), if known. With `departed_by_ns`, who walked off after the event by then counts too."""
        p = self.params
        geo = self._along_shelf(plate_deltas_g)
        front_a = geo[0].front_left
        front_b = geo[-1].front_right
        shelf_z = geo[0].center[2]
        # where on the shelf front the weight changed: a hand is judged against this point, finer than
        # the plates' span (side by side at neighbouring plates, hands are ~10 cm apart)
        mass = sum(abs(d) for d in plate_deltas_g.values()) or 1.0
        spot = (
            sum((g.front_left[0] + g.front_right[0]) / 2 * abs(plate_deltas_g[g.plate_id]) for g in geo) / mass,
            sum((g.front_left[1] + g.front_right[1]) / 2 * abs(plate_deltas_g[g.plate_id]) for g in geo) / mass,
        )
        hand_lo, hand_hi = start_ns - round(p.hand_lead_s * NS), end_ns + round(p.hand_lag_s * NS)
        if reach is not None:
            reach_x, in_ns, out_ns = reach
            # the camera's hand counts while that hand was in the shelf
            hand_lo, hand_hi = in_ns - NS // 20, (out_ns if out_ns is not None else end_ns) + NS // 20
            # the curtain saw where the hand went in (to the centimetre): a unit of a wide facing may
            # lie a few plates from it, but the person stood and reached there
            g = geo[0]
            f = (reach_x - g.x_range_m[0]) / (g.x_range_m[1] - g.x_range_m[0])
            spot = (
                g.front_left[0] + f * (g.front_right[0] - g.front_left[0]),
                g.front_left[1] + f * (g.front_right[1] - g.front_left[1]),
            )
            front_a = front_b = spot
        normal = self.store.gondolas_by_id[geo[0].gondola_id].aisle_normal
        lo, hi = start_ns - NS // 2, end_ns + NS // 2
        scores: dict[str | None, float] = {}
        details: dict[str | None, tuple[float, str | None]] = {}
        windows = [
            (hist, window)
            for hist in self.tracks.values()
            if hist.last_ns >= lo and hist.first_ns <= hi and (window := samples_between(hist.samples, lo, hi))
        ]
        windows += self._lost_meanwhile(windows, lo, hi)
        # The one who acted stands there throughout; a passer-by is close only for a moment. So the body
        # term is averaged over the event, and a hand seen at the plates' front adds to it.
        mean_logs, best_ds = _body_terms([w for _, w in windows], front_a, front_b, normal, p)
        for k, (hist, window) in enumerate(windows):
            best_log, best_d = float(mean_logs[k]), float(best_ds[k])
            hands = [s[3] for s in window if s[3] is not None and hand_lo <= s[0] <= hand_hi]
            if departed_by_ns is not None:
                best_log += math.log(self._departure_odds(hist, spot, end_ns, departed_by_ns))
            if hands:
                # the mean of the hand's reports, where per-frame pose noise averages out
                mean = tuple(sum(h[i] for h in hands) / len(hands) for i in range(3))
                d_mean = math.hypot(mean[0] - spot[0], mean[1] - spot[1], mean[2] - shelf_z)
                z = d_mean / p.hand_std_m
                if z <= 3:
                    best_log = max(best_log, p.hand_bonus - 0.5 * z * z)
                elif d_mean >= p.hand_elsewhere_m:
                    best_log += math.log(p.hand_elsewhere)  # seen reaching, but not here: busy with another item
                # in between (another unit of a wide facing, taken in the same reach?): the body decides
            visit_id = self.visit_of_track(hist.track_id, (start_ns + end_ns) // 2)
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

    def stayed_put(self, track_id: str, lo_ns: int, hi_ns: int, radius_m: float) -> bool:
        """Whether this track stood within `radius_m` of where it was at `lo_ns` until `hi_ns`."""
        hist = self.tracks.get(track_id)
        window = samples_between(hist.samples, lo_ns, hi_ns) if hist is not None else []
        if not window or window[0][0] - lo_ns > NS or hi_ns - window[-1][0] > NS:
            return False
        x0, y0 = window[0][1], window[0][2]
        return all(math.hypot(x - x0, y - y0) <= radius_m for _, x, y, _ in window)

    def _lost_meanwhile(
        self, windows: list[tuple[TrackHistory, list[Sample]]], lo_ns: int, hi_ns: int
    ) -> list[tuple[TrackHistory, list[Sample]]]:
        """People the tracker lost for a moment while the plates changed (a dropout of 0.5-3 s, which may
        go on as a new track): their track was seen shortly before and nobody of their visit is seen
        meanwhile. They stood where they were last seen (and first seen again, if the track went on):
        without them the one who reached may be missing, and 'nobody' would win."""
        lost_ns = round(self.params.lost_after_s * NS)
        mid = (lo_ns + hi_ns) // 2
        seen = {self.visit_of_track(hist.track_id, mid) for hist, _ in windows}
        windowed = {hist.track_id for hist, _ in windows}
        found: list[tuple[TrackHistory, list[Sample]]] = []
        for hist in self.tracks.values():
            if hist.track_id in windowed or hist.first_ns > lo_ns or hist.last_ns < lo_ns - lost_ns:
                continue
            before = samples_between(hist.samples, lo_ns - lost_ns, lo_ns)
            if not before:
                continue
            visit_id = self.visit_of_track(hist.track_id, mid)
            if visit_id is None or visit_id in seen:
                continue
            if hist.last_ns < lo_ns and self._ended_at_an_exit(hist):
                continue  # gone by the exit
            after = samples_between(hist.samples, hi_ns, hi_ns + lost_ns)
            found.append((hist, [before[-1], *after[:1]]))
            seen.add(visit_id)
        return found

    def _departure_odds(self, hist: TrackHistory, spot: tuple[float, float], end_ns: int, until_ns: int) -> float:
        """Odds that this track's person made the event at `spot`, from whether and when they walked off
        after it, as far as the tracks tell by `until_ns`."""
        p = self.params
        stays_from_s = p.departure_odds[-2][0]
        for t, x, y, _ in samples_between(hist.samples, end_ns + 1, until_ns):
            if math.hypot(x - spot[0], y - spot[1]) > p.departure_m:
                left_s = (t - end_ns) / NS
                return next(odds for up_to_s, odds in p.departure_odds if left_s < up_to_s)
        # not walked off (yet): staying on tells once past the taker's usual moment; a track that ended
        # (lost, or gone by the exit) tells nothing
        if hist.last_ns >= until_ns - NS // 2 and until_ns - end_ns >= stays_from_s * NS:
            return p.departure_odds[-1][1]
        return 1.0

"""Load and check a store layout file. Every problem is reported with the file and the field path."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from store_edge.errors import ConfigError, FieldProblem
from store_edge.layout.model import StoreLayout, point_in_polygon

# libyaml's parser where PyYAML has it: a large store's file parses ~10x faster than in pure Python
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """Safe YAML that refuses a key given twice: PyYAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


def parse_yaml(text: str, source: str | Path) -> Any:
    """Parse YAML text, turning syntax errors into a ConfigError that names the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(source, [FieldProblem(where, f"YAML syntax error: {problem}")]) from e


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(path, [FieldProblem("(file)", f"cannot read: {e.strerror or e}")]) from e
    return parse_yaml(text, path)


def parse_store(data: Any, source: str | Path = "<store>") -> StoreLayout:
    if not isinstance(data, dict):
        raise ConfigError(source, [FieldProblem("(top level)", "expected a mapping of store fields")])
    try:
        store = StoreLayout.model_validate(data)
    except ValidationError as e:
        raise ConfigError.from_validation_error(source, e) from e
    problems = check_store_references(store)
    if problems:
        raise ConfigError(source, problems)
    return store


def load_store(path: str | Path) -> StoreLayout:
    return parse_store(read_yaml(path), path)


def load_store_text(text: str, source: str = "<store>") -> StoreLayout:
    """Parse a store from YAML text (used for the copy embedded in a recording)."""
    return parse_store(parse_yaml(text, source), source)


RESERVED_TRACKER_ID = "tracker"


def _footprints_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Two convex footprints overlap when a point just inside one lies inside the other (touching is fine)."""

    def inner_points(poly: np.ndarray) -> np.ndarray:
        centre = poly.mean(axis=0)
        corners = centre + (poly - centre) * 0.98
        mids = (corners + np.roll(corners, -1, axis=0)) / 2
        return np.vstack([corners, mids, centre[None, :]])

    return any(point_in_polygon(p, b) for p in inner_points(a)) or any(point_in_polygon(p, a) for p in inner_points(b))


def check_store_references(store: StoreLayout) -> list[FieldProblem]:
    """What pydantic cannot see field by field: unique ids, references, geometry, loads."""
    problems: list[FieldProblem] = []

    def dupes(kind: str, items: list[tuple[str, str]]) -> None:
        counts = Counter(i for _, i in items)
        for path, ident in items:
            if counts[ident] > 1:
                problems.append(FieldProblem(path, f"duplicate {kind} {ident!r}"))

    dupes("sku", [(f"products[{i}].sku", p.sku) for i, p in enumerate(store.products)])
    ids: list[tuple[str, str]] = []
    devices: list[tuple[str, str]] = []
    outline = np.array(store.floor.outline, dtype=float)
    for gi, g in enumerate(store.gondolas):
        gp = f"gondolas[{gi}]"
        ids.append((f"{gp}.id", g.id))
        if g.length_m < 0.1:
            problems.append(FieldProblem(f"{gp}.front", "front line is shorter than 0.1 m"))
            continue
        for si, s in enumerate(g.shelves):
            sp = f"{gp}.shelves[{si}]"
            ids.append((f"{sp}.id", s.id))
            devices.append((f"{sp}.scale.device_id", s.scale.device_id))
            if s.curtain is not None:
                devices.append((f"{sp}.curtain.device_id", s.curtain.device_id))
            if s.depth_m > g.depth_m + 1e-9:
                problems.append(FieldProblem(f"{sp}.depth_m", f"{s.depth_m} m is deeper than the gondola"))
            prev_end = 0.0
            for pi, p in enumerate(s.plates):
                pp = f"{sp}.plates[{pi}]"
                ids.append((f"{pp}.id", p.id))
                if p.x_m + 1e-9 < prev_end:
                    problems.append(
                        FieldProblem(
                            f"{pp}.x_m",
                            "overlaps the previous plate (list plates in order from the front line's start)",
                        )
                    )
                if p.x_m + p.width_m > g.length_m + 1e-6:
                    problems.append(
                        FieldProblem(
                            f"{pp}.x_m",
                            f"plate ends at {p.x_m + p.width_m:.3f} m, past the gondola's {g.length_m:.3f} m front",
                        )
                    )
                prev_end = p.x_m + p.width_m
        for corner in g.footprint():
            if not point_in_polygon(corner, outline):
                problems.append(FieldProblem(f"{gp}.front", "gondola footprint extends outside the floor outline"))
                break
    footprints = [g.footprint() for g in store.gondolas]
    boxes = [(f.min(axis=0), f.max(axis=0)) for f in footprints]
    for (ai, a), (bi, b) in combinations(enumerate(store.gondolas), 2):
        (alo, ahi), (blo, bhi) = boxes[ai], boxes[bi]
        if (alo >= bhi).any() or (blo >= ahi).any():
            continue  # bounding boxes apart (or touching): no overlap; a large store has mostly such pairs
        if a.length_m >= 0.1 and b.length_m >= 0.1 and _footprints_overlap(footprints[ai], footprints[bi]):
            problems.append(FieldProblem(f"gondolas[{bi}].front", f"gondola {b.id!r} overlaps gondola {a.id!r}"))
    for ci, c in enumerate(store.cameras):
        ids.append((f"cameras[{ci}].id", c.id))
        w, h = c.resolution
        if not (0 <= c.intrinsics.cx <= w and 0 <= c.intrinsics.cy <= h):
            problems.append(FieldProblem(f"cameras[{ci}].intrinsics", "principal point lies outside the image"))
    for gi, gate in enumerate(store.gates):
        ids.append((f"gates[{gi}].id", gate.id))
        devices.append((f"gates[{gi}].counter_id", gate.counter_id))
        if gate.scanner_id is not None:
            devices.append((f"gates[{gi}].scanner_id", gate.scanner_id))
        elif gate.kind == "entry":
            problems.append(FieldProblem(f"gates[{gi}].scanner_id", "an entry gate needs a code scanner"))
        if not all(point_in_polygon(p, outline) for p in gate.line):
            problems.append(FieldProblem(f"gates[{gi}].line", "the gate lies outside the floor outline"))
        # the edge publishes these itself: a device of the store may not take them
        devices.append((f"gates[{gi}] (reserved for its controller)", f"gatectl-{gate.id}"))
    devices.append(("(reserved for the store-level tracker)", RESERVED_TRACKER_ID))
    dupes("id", ids)
    dupes("device id", devices)
    for kind in ("entry", "exit"):
        if not store.gates_of_kind(kind):
            problems.append(FieldProblem("gates", f"the store needs at least one {kind} gate"))
    if problems:
        return problems  # later checks rely on unique ids

    geometry = store.plate_geometry
    load_g: dict[str, float] = {}
    for fi, f in enumerate(store.planogram):
        fp = f"planogram[{fi}]"
        product = store.products_by_sku.get(f.sku)
        if product is None:
            problems.append(FieldProblem(f"{fp}.sku", f"unknown sku {f.sku!r} (not in products)"))
            continue
        unknown = [pid for pid in f.plates if pid not in geometry]
        for pid in unknown:
            problems.append(FieldProblem(f"{fp}.plates.{pid}", "unknown plate id"))
        if unknown:
            continue
        shelves = {geometry[pid].shelf_id for pid in f.plates}
        if len(shelves) > 1:
            problems.append(FieldProblem(f"{fp}.plates", f"a facing lies on one shelf, found {sorted(shelves)}"))
            continue
        idx = sorted(geometry[pid].index_on_shelf for pid in f.plates)
        if idx != list(range(idx[0], idx[0] + len(idx))):
            problems.append(FieldProblem(f"{fp}.plates", "a facing covers neighbouring plates only (gap found)"))
        for pid, units in f.plates.items():
            load_g[pid] = load_g.get(pid, 0.0) + units * (product.unit_weight_g.mean + 3 * product.unit_weight_g.std)
    shelf_plates = {p.id: p for g in store.gondolas for s in g.shelves for p in s.plates}
    for pid, grams in sorted(load_g.items()):
        rating = shelf_plates[pid].rating_kg * 1000
        if grams > rating:
            problems.append(
                FieldProblem(
                    f"planogram (plate {pid})",
                    f"full stock weighs up to {grams / 1000:.1f} kg, over the plate's {rating / 1000:.0f} kg rating",
                )
            )
    stocked = {f.sku for f in store.planogram}
    for i, prod in enumerate(store.products):
        if prod.sku not in stocked:
            problems.append(FieldProblem(f"products[{i}]", f"product {prod.sku!r} has no facing in the planogram"))
    return problems

#!/usr/bin/env python3
"""Generate the sample store layouts `sample_data/stores/demo.yaml` and `sample_data/stores/hard.yaml`.

Deterministic: every random choice comes from a seeded numpy Generator, so running

    .venv/bin/python tools/generate_stores.py            # writes sample_data/stores/
    .venv/bin/python tools/generate_stores.py --out DIR  # writes DIR/demo.yaml, DIR/hard.yaml

gives byte-identical files. The stores are built as `StoreLayout` objects and checked with
`store_edge.layout.load_store` after writing.

Sizes follow the AiFi AutoCheckout competition store (CPS-IoT Week 2020): 4"x16" load-cell plates
rated 20 kg, 12 plates per 48" shelf and 9 per 36" shelf, shelves sampled at 60 Hz with 12 samples per
message. Product weights imitate a real convenience-store catalogue: 15 g to about 1.6 kg, median
about 90 g, unit-to-unit spread (CV) around 1.2% with a few loose items (fruit, pastries) up to 15%.

- demo: 5 gondolas, ordinary products, one product per plate.
- hard: 8 gondolas, many products within 2 g of each other (chocolate bars, 1 oz chip bags), some
  side by side on a shelf and some gondolas apart, and neighbouring products sharing plates.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing the package
    sys.path.insert(0, str(REPO_ROOT))

from store_edge.layout.camera import CameraModel, look_down_extrinsics  # noqa: E402
from store_edge.layout.loader import load_store  # noqa: E402
from store_edge.layout.model import (  # noqa: E402
    Camera,
    Extrinsics,
    FacingPlacement,
    Floor,
    Gate,
    Gondola,
    Intrinsics,
    LightCurtain,
    Plate,
    Product,
    ScaleDevice,
    Shelf,
    StoreLayout,
    UnitWeight,
)

DEFAULT_OUT = REPO_ROOT / "sample_data" / "stores"

# --- physical constants (metres) ------------------------------------------------------------------
INCH = 0.0254
PLATE_WIDTH_M = 4 * INCH  # 0.1016
SHELF_DEPTH_M = 16 * INCH  # 0.4064
PLATES_PER_SHELF = {48: 12, 36: 9}  # shelf length in inches -> 4" plates
GONDOLA_DEPTH_M = 0.45  # shelf depth plus the back panel
PLATE_RATING_KG = 20.0
SHELF_HEIGHTS_M = {
    4: (0.15, 0.6, 1.05, 1.5),
    5: (0.15, 0.55, 0.95, 1.35, 1.75),
}
SCALE_RATE_HZ = 60.0
SAMPLES_PER_MESSAGE = 12
CURTAIN_RESOLUTION_M = 0.01
MAX_FACING_PLATES = 5
LOAD_MARGIN = 0.9  # plan full stock at no more than 90% of the plate rating

WALL_CLEARANCE_M = 1.6  # free floor between the walls and any gondola (>= 1.5 m)
AISLE_M = 1.6  # between facing shelf fronts (>= 1.4 m)
GATE_ZONE_M = 3.6  # open floor along the south wall for the gates
GATE_Y_M = 1.2
GATE_LENGTH_M = 0.9

CAMERA_HEIGHT_M = 3.2
CAMERA_RESOLUTION = (640, 480)
CAMERA_FPS = 15.0
CAMERA_FLOOR_VIEW_M = (5.0, 3.75)  # floor area one camera sees from CAMERA_HEIGHT_M
CAMERA_FOCAL_PX = CAMERA_RESOLUTION[0] / 2 * CAMERA_HEIGHT_M / (CAMERA_FLOOR_VIEW_M[0] / 2)  # 409.6
# Widest grid spacing: neighbouring views overlap by at least 1 m x 0.75 m on the floor. The grid is
# made denser where needed until every plate is seen (a top shelf at 1.75 m is 1.45 m from the lens,
# where a camera's view is less than half as wide as on the floor).
CAMERA_MAX_SPACING_M = (4.0, 3.0)


# --- catalogue --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Category:
    """A kind of product: products to draw from (name, nominal packed weight in grams) and how such
    products vary, cost and stack."""

    items: tuple[tuple[str, float], ...]
    cv: float  # median coefficient of variation between units
    price: tuple[float, float]
    units: tuple[int, int]  # units one plate holds at full stock
    width: float  # relative preference for wide facings
    sort_by_weight: bool = False  # shelve in weight order (puts near-same weights side by side)
    jitter: float = 0.02  # a product's mean differs from its nominal weight by up to this fraction


CATALOGUE: dict[str, Category] = {
    "water": Category(
        items=(
            ("Clearspring Spring Water 500 ml", 515.0),
            ("Clearspring Spring Water 1 L", 1035.0),
            ("Clearspring Spring Water 1.5 L", 1560.0),
            ("Brightwater Sparkling Water 1 L", 1045.0),
            ("Clearspring Sport Cap Water 700 ml", 728.0),
            ("Brightwater Sparkling Lemon 1 L", 1047.0),
        ),
        cv=0.004,
        price=(1.29, 2.99),
        units=(4, 6),
        width=3.0,
    ),
    "soda_can": Category(
        items=(
            ("Fizzwell Cola 12 oz Can", 385.0),
            ("Fizzwell Diet Cola 12 oz Can", 369.0),
            ("Fizzwell Lemon-Lime 12 oz Can", 384.0),
            ("Fizzwell Root Beer 12 oz Can", 386.0),
            ("Fizzwell Orange 12 oz Can", 389.0),
            ("Fizzwell Ginger Ale 12 oz Can", 381.0),
            ("Fizzwell Cherry Cola 12 oz Can", 386.0),
            ("Fizzwell Cream Soda 12 oz Can", 388.0),
            ("Brightwater Sparkling Lime 12 oz Can", 368.0),
            ("Brightwater Sparkling Berry 12 oz Can", 368.0),
            ("Brightwater Sparkling Grapefruit 12 oz Can", 369.0),
        ),
        cv=0.004,
        price=(1.29, 1.79),
        units=(10, 12),
        width=2.5,
    ),
    "bottle": Category(
        items=(
            ("Fizzwell Cola 20 oz", 640.0),
            ("Fizzwell Diet Cola 20 oz", 618.0),
            ("Fizzwell Lemon-Lime 20 oz", 638.0),
            ("Sunpress Orange Juice 15.2 oz", 490.0),
            ("Sunpress Apple Juice 15.2 oz", 485.0),
            ("Leafline Green Tea 16.9 oz", 525.0),
            ("Leafline Lemon Iced Tea 18.5 oz", 590.0),
            ("Hydra Sport Lemon-Lime 20 oz", 640.0),
            ("Hydra Sport Fruit Punch 20 oz", 641.0),
            ("Hydra Sport Glacier 20 oz", 639.0),
            ("Dairy Best Chocolate Milk 14 oz", 450.0),
            ("Coldbrew Co. Vanilla Iced Coffee 13.7 oz", 560.0),
            ("Leafline Peach Iced Tea 18.5 oz", 591.0),
        ),
        cv=0.004,
        price=(1.99, 3.49),
        units=(5, 6),
        width=2.5,
    ),
    "energy": Category(
        items=(
            ("Voltage Energy 8.4 oz", 265.0),
            ("Voltage Sugar Free 8.4 oz", 256.0),
            ("Voltage Energy 16 oz", 490.0),
            ("Rush Energy Original 16 oz", 495.0),
            ("Rush Energy Tropical 16 oz", 497.0),
            ("Rush Zero 16 oz", 478.0),
            ("Voltage Cold Brew Shot 6.5 oz", 210.0),
        ),
        cv=0.004,
        price=(2.49, 3.99),
        units=(8, 12),
        width=1.8,
    ),
    "chips_small": Category(
        items=(
            ("Crisp Valley Sea Salt Chips 1 oz", 31.0),
            ("Crisp Valley BBQ Chips 1 oz", 31.4),
            ("Crisp Valley Sour Cream & Onion Chips 1 oz", 31.2),
            ("Crisp Valley Salt & Vinegar Chips 1 oz", 30.8),
            ("Crisp Valley Jalapeno Chips 1 oz", 31.5),
            ("Crisp Valley Kettle Original 1 oz", 31.8),
            ("Golden Acre Cheese Puffs 1 oz", 30.4),
            ("Golden Acre Tortilla Chips 1 oz", 31.1),
            ("Golden Acre Nacho Cheese Chips 1 oz", 31.3),
            ("Golden Acre Corn Twists 1 oz", 30.6),
            ("Golden Acre Pretzel Bites 1 oz", 31.7),
            ("Golden Acre Butter Popcorn 1 oz", 30.2),
            ("Golden Acre Hot Cheese Curls 1 oz", 30.5),
        ),
        cv=0.018,
        price=(0.99, 1.49),
        units=(8, 12),
        width=1.5,
        sort_by_weight=True,
        jitter=0.01,
    ),
    "chips_large": Category(
        items=(
            ("Crisp Valley Sea Salt Chips 8 oz", 240.0),
            ("Crisp Valley BBQ Chips 8 oz", 241.0),
            ("Crisp Valley Kettle Original 8 oz", 238.0),
            ("Golden Acre Tortilla Chips 11 oz", 325.0),
            ("Golden Acre Cheese Puffs 8 oz", 242.0),
            ("Golden Acre Pretzel Twists 10 oz", 296.0),
            ("Crisp Valley Wavy Chips 7.75 oz", 232.0),
            ("Golden Acre Restaurant Tortillas 13 oz", 385.0),
            ("Golden Acre Popcorn 6 oz", 182.0),
        ),
        cv=0.01,
        price=(3.49, 5.49),
        units=(3, 4),
        width=2.5,
    ),
    "nuts_jerky": Category(
        items=(
            ("Trail Mark Beef Jerky Original 2.85 oz", 90.0),
            ("Trail Mark Teriyaki Jerky 2.85 oz", 90.0),
            ("Trail Mark Peppered Jerky 2.85 oz", 90.0),
            ("Trail Mark Meat Sticks 2 pk", 62.0),
            ("Harvest Row Roasted Peanuts 3.5 oz", 106.0),
            ("Harvest Row Salted Cashews 2.5 oz", 77.0),
            ("Harvest Row Smoked Almonds 2.25 oz", 70.0),
            ("Harvest Row Trail Mix 3.5 oz", 107.0),
            ("Harvest Row Sunflower Seeds 5.25 oz", 158.0),
            ("Harvest Row Pistachios 2.5 oz", 78.0),
            ("Harvest Row Honey Peanuts 1.75 oz", 54.0),
        ),
        cv=0.025,
        price=(1.99, 5.99),
        units=(10, 16),
        width=1.3,
    ),
    "crackers_cookies": Category(
        items=(
            ("Baker's Lane Chocolate Chip Cookies 13 oz", 390.0),
            ("Baker's Lane Oatmeal Raisin Cookies 12 oz", 360.0),
            ("Baker's Lane Sandwich Cremes 14 oz", 420.0),
            ("Baker's Lane Butter Shortbread 10 oz", 305.0),
            ("Baker's Lane Fig Bars 10 oz", 300.0),
            ("Baker's Lane Ginger Snaps 12 oz", 360.0),
            ("Saltbox Butter Crackers 13.7 oz", 410.0),
            ("Saltbox Cheese Crackers 7 oz", 210.0),
            ("Saltbox Wheat Crackers 9 oz", 270.0),
            ("Saltbox Rice Crackers 3.5 oz", 110.0),
            ("Saltbox Graham Crackers 14.4 oz", 430.0),
            ("Saltbox Peanut Butter Sandwich Crackers 8 pk", 330.0),
            ("Baker's Lane Cookie Minis 3 oz", 92.0),
        ),
        cv=0.012,
        price=(2.49, 4.99),
        units=(3, 6),
        width=2.0,
    ),
    "chocolate": Category(
        items=(
            ("Cocoa Road Milk Chocolate Bar", 44.0),
            ("Cocoa Road Dark Chocolate Bar", 43.0),
            ("Cocoa Road Caramel Bar", 52.0),
            ("Cocoa Road Peanut Nougat Bar", 54.5),
            ("Cocoa Road Almond Bar", 45.0),
            ("Cocoa Road White Chocolate Bar", 43.5),
            ("Cocoa Road Fruit & Nut Bar", 49.0),
            ("Hartwell Crispy Wafer Bar", 46.0),
            ("Hartwell Hazelnut Bar", 45.5),
            ("Hartwell Mint Crisp Bar", 42.0),
            ("Hartwell Toffee Crunch Bar", 50.0),
            ("Hartwell Cookies & Cream Bar", 44.5),
            ("Hartwell Rocky Road Bar", 55.0),
            ("Velvet Bean 70% Dark Bar", 41.5),
            ("Velvet Bean Sea Salt Caramel Bar", 48.0),
            ("Velvet Bean Orange Dark Bar", 42.5),
            ("Velvet Bean Raspberry Bar", 47.0),
            ("Velvet Bean Espresso Bar", 41.0),
            ("Northfield Peanut Butter Cups 2 pk", 44.0),
            ("Northfield Coconut Bar", 51.0),
            ("Northfield Malted Crisp Bar", 49.5),
            ("Northfield Caramel Wafer Bar", 53.0),
            ("Northfield Honeycomb Bar", 47.5),
            ("Northfield Triple Layer Bar", 56.0),
        ),
        cv=0.011,
        price=(1.29, 2.49),
        units=(24, 36),
        width=1.0,
        sort_by_weight=True,
        jitter=0.015,
    ),
    "gum_mints": Category(
        items=(
            ("Fresh Leaf Spearmint Gum 14 ct", 36.0),
            ("Fresh Leaf Peppermint Gum 14 ct", 36.0),
            ("Fresh Leaf Bubble Gum 5 ct", 16.0),
            ("Fresh Leaf Watermelon Gum 14 ct", 36.5),
            ("Polar Peppermint Mints Tin", 28.0),
            ("Polar Wintergreen Mints Tin", 28.0),
            ("Polar Cinnamon Mints Tin", 28.5),
            ("Sugar Lane Hard Candy Roll", 32.0),
            ("Polar Sugar-Free Mints Roll", 17.0),
        ),
        cv=0.015,
        price=(0.99, 2.49),
        units=(30, 48),
        width=0.8,
    ),
    "candy": Category(
        items=(
            ("Fizzbolt Sour Worms 5 oz", 150.0),
            ("Fizzbolt Gummy Bears 5 oz", 150.0),
            ("Fizzbolt Fruit Chews 2.17 oz", 64.0),
            ("Fizzbolt Sour Belts 3 oz", 90.0),
            ("Sugar Lane Licorice Twists 7 oz", 205.0),
            ("Sugar Lane Jelly Beans 3.5 oz", 104.0),
            ("Sugar Lane Lollipops 5 pk", 72.0),
            ("Sugar Lane Chocolate Peanuts 3.4 oz", 101.0),
            ("Sugar Lane Malt Balls 4 oz", 118.0),
        ),
        cv=0.012,
        price=(1.49, 3.99),
        units=(8, 14),
        width=1.2,
    ),
    "snack_bars": Category(
        items=(
            ("Summit Oat & Honey Granola Bar 2 pk", 45.0),
            ("Summit Chocolate Chip Granola Bar", 26.0),
            ("Summit Peanut Butter Protein Bar", 62.0),
            ("Summit Cookie Dough Protein Bar", 62.0),
            ("Summit Chocolate Fudge Protein Bar", 62.5),
            ("Summit Birthday Cake Protein Bar", 61.5),
            ("Meadow Fruit & Nut Bar", 42.0),
            ("Meadow Almond Coconut Bar", 40.0),
            ("Meadow Blueberry Oat Bar", 38.0),
            ("Meadow Dark Cherry Bar", 42.0),
            ("Meadow Peanut Crunch Bar", 41.0),
            ("Meadow Apple Cinnamon Bar", 38.0),
            ("Meadow Lemon Poppy Bar", 40.0),
        ),
        cv=0.012,
        price=(1.49, 2.99),
        units=(20, 30),
        width=1.0,
    ),
    "breakfast": Category(
        items=(
            ("Morning Bell Ground Coffee 12 oz", 365.0),
            ("Morning Bell Coffee Pods 10 ct", 125.0),
            ("Oat Cup Maple Instant Oatmeal Cup", 74.0),
            ("Honey Crunch Cereal Cup", 55.0),
            ("Oat Cup Apple Cinnamon Oatmeal Cup", 73.0),
            ("Morning Bell Instant Coffee Sticks 7 ct", 28.0),
        ),
        cv=0.01,
        price=(1.79, 8.99),
        units=(5, 12),
        width=1.5,
    ),
    "noodles_soup": Category(
        items=(
            ("Quick Bowl Chicken Noodle Cup", 64.0),
            ("Quick Bowl Beef Noodle Cup", 64.5),
            ("Quick Bowl Shrimp Noodle Cup", 65.0),
            ("Quick Bowl Spicy Ramen Pack", 120.0),
            ("Quick Bowl Chicken Ramen Pack", 88.0),
            ("Quick Bowl Miso Ramen Pack", 90.0),
            ("Homestead Tomato Soup 10.75 oz", 355.0),
            ("Homestead Chicken Noodle Soup 10.75 oz", 352.0),
            ("Homestead Minestrone 18.6 oz", 580.0),
        ),
        cv=0.012,
        price=(0.89, 3.79),
        units=(4, 10),
        width=1.4,
    ),
    "personal_care": Category(
        items=(
            ("Brightsmile Toothpaste 4 oz", 150.0),
            ("Brightsmile Travel Toothbrush", 24.0),
            ("Fresh Day Deodorant Stick", 85.0),
            ("Purehand Hand Sanitizer 2 oz", 70.0),
            ("Relief Plus Pain Reliever 24 ct", 38.0),
            ("Softpack Pocket Tissues 6 pk", 68.0),
            ("Powercell AA Batteries 4 pk", 105.0),
            ("Linkline USB-C Charging Cable", 62.0),
            ("Softpack Travel Shampoo 3 oz", 98.0),
            ("Relief Plus Antacid Chews 12 ct", 48.0),
        ),
        cv=0.012,
        price=(2.49, 9.99),
        units=(6, 15),
        width=1.2,
    ),
    "fresh": Category(
        items=(
            ("Banana (each)", 120.0),
            ("Lime (each)", 67.0),
            ("Gala Apple (each)", 180.0),
            ("Butter Croissant", 62.0),
            ("Blueberry Muffin", 113.0),
            ("Hard-Boiled Eggs 2 pk", 112.0),
        ),
        cv=0.11,
        price=(0.59, 3.49),
        units=(5, 10),
        width=1.5,
    ),
}

MAX_STD_G = 14.0
MAX_CV = 0.15
MIN_STD_G = 0.05


# --- store plans ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GondolaPlan:
    length_in: int  # 48 or 36
    shelves: int  # 4 or 5
    categories: tuple[tuple[str, int], ...]  # (category, product count), bottom shelf first


@dataclass(frozen=True)
class StorePlan:
    store_id: str
    name: str
    seed: int
    runs: tuple[tuple[GondolaPlan, ...], ...]  # west to east; a run is one gondola or two back to back
    share_probability: float  # chance that two neighbouring facings on a shelf share a plate


DEMO = StorePlan(
    store_id="demo",
    name="Demo convenience store",
    seed=20200401,
    runs=(
        (
            GondolaPlan(48, 5, (("water", 3), ("soda_can", 6), ("bottle", 6), ("energy", 3))),
            GondolaPlan(48, 5, (("chips_large", 4), ("crackers_cookies", 3), ("nuts_jerky", 5), ("chips_small", 6))),
        ),
        (
            GondolaPlan(36, 4, (("candy", 3), ("chocolate", 8), ("gum_mints", 4))),
            GondolaPlan(36, 4, (("crackers_cookies", 3), ("breakfast", 3), ("snack_bars", 6))),
        ),
        (GondolaPlan(36, 4, (("noodles_soup", 4), ("personal_care", 5), ("fresh", 3))),),
    ),
    share_probability=0.0,
)

HARD = StorePlan(
    store_id="hard",
    name="Hard case store: near-same weights and shared plates",
    seed=20200402,
    runs=(
        (
            GondolaPlan(48, 5, (("water", 6), ("soda_can", 11))),
            GondolaPlan(48, 5, (("bottle", 13), ("energy", 7))),
        ),
        (
            GondolaPlan(48, 5, (("chips_large", 9), ("chips_small", 13))),
            GondolaPlan(48, 5, (("crackers_cookies", 13), ("nuts_jerky", 11))),
        ),
        (
            GondolaPlan(36, 4, (("chocolate", 14), ("gum_mints", 5))),
            GondolaPlan(36, 4, (("candy", 9), ("gum_mints", 4), ("fresh", 3))),
        ),
        (
            GondolaPlan(36, 4, (("snack_bars", 13), ("chocolate", 10))),
            GondolaPlan(36, 4, (("noodles_soup", 9), ("breakfast", 6), ("personal_care", 10), ("fresh", 3))),
        ),
    ),
    share_probability=0.35,
)

PLANS = (DEMO, HARD)


# --- products ---------------------------------------------------------------------------------------
def ean13(rng: np.random.Generator, taken: set[str]) -> str:
    """A fresh EAN-13 in the 20-29 'restricted circulation' range (store-internal numbers)."""
    while True:
        body = "2" + "".join(str(int(d)) for d in rng.integers(0, 10, size=11))
        total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
        code = body + str((10 - total % 10) % 10)
        if code not in taken:
            taken.add(code)
            return code


def make_product(rng: np.random.Generator, cat: Category, item: tuple[str, float], taken: set[str]) -> Product:
    name, nominal = item
    mean = round(nominal * (1 + float(rng.uniform(-cat.jitter, cat.jitter))), 1)
    cv = min(cat.cv * math.exp(float(rng.normal(0.0, 0.45))), MAX_CV)
    std = round(max(min(mean * cv, MAX_STD_G), MIN_STD_G), 2)
    p_lo, p_hi = cat.price
    price = math.floor(float(rng.uniform(p_lo, p_hi)) * 10) / 10 + 0.09  # x.x9 pricing
    return Product(
        sku=ean13(rng, taken),
        name=name,
        price=Decimal(f"{price:.2f}"),
        unit_weight_g=UnitWeight(mean=mean, std=std),
    )


@dataclass(frozen=True)
class Stocked:
    """A product and how many units one plate of its facing holds at full stock."""

    product: Product
    units: int
    width: float


def build_products(rng: np.random.Generator, plan: StorePlan) -> list[list[Stocked]]:
    """Products per gondola, in shelving order (bottom shelf first)."""
    wanted: dict[str, int] = {}
    for run in plan.runs:
        for g in run:
            for key, n in g.categories:
                wanted[key] = wanted.get(key, 0) + n
    pools: dict[str, list[tuple[str, float]]] = {}
    for key, n in wanted.items():
        items = CATALOGUE[key].items
        if n > len(items):
            raise ValueError(f"{plan.store_id}: {n} {key} products wanted, catalogue has {len(items)}")
        picked = sorted(int(i) for i in rng.choice(len(items), size=n, replace=False))
        pools[key] = [items[i] for i in picked]
    taken: set[str] = set()
    out: list[list[Stocked]] = []
    for run in plan.runs:
        for g in run:
            stocked: list[Stocked] = []
            for key, n in g.categories:
                cat = CATALOGUE[key]
                chosen, pools[key] = pools[key][:n], pools[key][n:]
                group = [make_product(rng, cat, item, taken) for item in chosen]
                if cat.sort_by_weight:
                    group.sort(key=lambda p: p.unit_weight_g.mean)
                for p in group:
                    w = p.unit_weight_g
                    units = int(rng.integers(cat.units[0], cat.units[1] + 1))
                    cap = int(PLATE_RATING_KG * 1000 * LOAD_MARGIN // (w.mean + 3 * w.std))
                    stocked.append(Stocked(p, max(1, min(units, cap)), cat.width))
            out.append(stocked)
    return out


# --- shelves and planogram --------------------------------------------------------------------------
def split_counts(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    counts = [base] * parts
    for i in rng.choice(parts, size=extra, replace=False):
        counts[int(i)] += 1
    return counts


def plan_shelf(
    rng: np.random.Generator, items: Sequence[Stocked], n_plates: int, share_probability: float
) -> list[list[int]]:
    """Plate indices of each item's facing on one shelf: widths 1..5, neighbours sometimes sharing one
    plate, every plate covered."""
    n = len(items)
    if not (math.ceil(n_plates / MAX_FACING_PLATES) <= n <= n_plates):
        raise ValueError(f"{n} facings cannot cover a {n_plates}-plate shelf")
    shares = [bool(rng.random() < share_probability) for _ in range(n - 1)]
    # A plate shared by two facings counts in both widths; every facing keeps one plate of its own.
    while sum(shares) > n_plates - n or n_plates + sum(shares) > MAX_FACING_PLATES * n:
        on = [i for i, s in enumerate(shares) if s]
        shares[int(on[int(rng.integers(len(on)))])] = False
    widths = [1 + int(i > 0 and shares[i - 1]) + int(i < n - 1 and shares[i]) for i in range(n)]
    prefs = np.array([it.width for it in items])
    for _ in range(n_plates + sum(shares) - sum(widths)):
        room = np.array([w < MAX_FACING_PLATES for w in widths])
        p = prefs * room
        widths[int(rng.choice(n, p=p / p.sum()))] += 1
    facings: list[list[int]] = []
    pos = 0
    for i, w in enumerate(widths):
        start = pos - (1 if i > 0 and shares[i - 1] else 0)
        facings.append(list(range(start, start + w)))
        pos = start + w
    assert pos == n_plates
    return facings


def build_gondolas_and_planogram(
    rng: np.random.Generator, plan: StorePlan, stock: list[list[Stocked]]
) -> tuple[list[Gondola], list[FacingPlacement]]:
    gondolas: list[Gondola] = []
    planogram: list[FacingPlacement] = []
    x = WALL_CLEARANCE_M
    gi = 0
    for run in plan.runs:
        if len(run) not in (1, 2) or len({g.length_in for g in run}) != 1:
            raise ValueError("a run is one gondola or two of the same length back to back")
        length = round(run[0].length_in * INCH, 4)
        y0, y1 = GATE_ZONE_M, round(GATE_ZONE_M + length, 4)
        for side, gplan in enumerate(run):
            gid = f"G{gi + 1}"
            if side == 0:  # front on the west side, shoppers west of it: walk the front northwards
                fx = round(x, 4)
                front = ((fx, y0), (fx, y1))
            else:  # back to back with the first: front on the east side, walk it southwards
                fx = round(x + 2 * GONDOLA_DEPTH_M, 4)
                front = ((fx, y1), (fx, y0))
            n_plates = PLATES_PER_SHELF[gplan.length_in]
            items = stock[gi]
            counts = split_counts(rng, len(items), gplan.shelves)
            shelves: list[Shelf] = []
            k = 0
            for si, (z, count) in enumerate(zip(SHELF_HEIGHTS_M[gplan.shelves], counts, strict=True)):
                sid = f"{gid}-S{si + 1}"
                plate_ids = [f"{sid}-P{pi + 1:02d}" for pi in range(n_plates)]
                shelves.append(
                    Shelf(
                        id=sid,
                        z_m=z,
                        depth_m=SHELF_DEPTH_M,
                        scale=ScaleDevice(
                            device_id=f"scale-{sid}",
                            rate_hz=SCALE_RATE_HZ,
                            samples_per_message=SAMPLES_PER_MESSAGE,
                        ),
                        curtain=LightCurtain(device_id=f"ir-{sid}", resolution_m=CURTAIN_RESOLUTION_M),
                        plates=[
                            Plate(
                                id=pid,
                                x_m=round(pi * PLATE_WIDTH_M, 4),
                                width_m=PLATE_WIDTH_M,
                                rating_kg=PLATE_RATING_KG,
                            )
                            for pi, pid in enumerate(plate_ids)
                        ],
                    )
                )
                on_shelf = items[k : k + count]
                k += count
                facings = plan_shelf(rng, on_shelf, n_plates, plan.share_probability)
                owners = [0] * n_plates
                for idx in facings:
                    for i in idx:
                        owners[i] += 1
                for it, idx in zip(on_shelf, facings, strict=True):
                    planogram.append(
                        FacingPlacement(
                            sku=it.product.sku,
                            plates={plate_ids[i]: max(1, it.units // owners[i]) for i in idx},
                        )
                    )
            gondolas.append(Gondola(id=gid, front=front, depth_m=GONDOLA_DEPTH_M, shelves=shelves))
            gi += 1
        x += len(run) * GONDOLA_DEPTH_M + AISLE_M
    return gondolas, planogram


# --- floor, gates, cameras --------------------------------------------------------------------------
def floor_size(plan: StorePlan) -> tuple[float, float]:
    width = 2 * WALL_CLEARANCE_M + sum(len(r) * GONDOLA_DEPTH_M for r in plan.runs) + AISLE_M * (len(plan.runs) - 1)
    depth = GATE_ZONE_M + max(r[0].length_in * INCH for r in plan.runs) + WALL_CLEARANCE_M
    return math.ceil(width * 10) / 10, math.ceil(depth * 10) / 10


def make_gates(width: float) -> list[Gate]:
    entry_x = round(width / 2 - 2.0 - GATE_LENGTH_M, 2)  # the two gates stand 4 m apart
    exit_x = round(width / 2 + 2.0, 2)
    return [
        Gate(
            id="entry-1",
            kind="entry",
            line=((entry_x, GATE_Y_M), (round(entry_x + GATE_LENGTH_M, 2), GATE_Y_M)),
            scanner_id="scanner-entry-1",
            counter_id="counter-entry-1",
        ),
        Gate(
            id="exit-1",
            kind="exit",
            line=((exit_x, GATE_Y_M), (round(exit_x + GATE_LENGTH_M, 2), GATE_Y_M)),
            counter_id="counter-exit-1",
        ),
    ]


def ceiling_camera(cam_id: str, x: float, y: float) -> Camera:
    raw = look_down_extrinsics((x, y, CAMERA_HEIGHT_M))
    r, t = raw.rvec, raw.tvec
    ext = Extrinsics(rvec=(_tidy(r[0]), _tidy(r[1]), _tidy(r[2])), tvec=(_tidy(t[0]), _tidy(t[1]), _tidy(t[2])))
    w, h = CAMERA_RESOLUTION
    return Camera(
        id=cam_id,
        resolution=CAMERA_RESOLUTION,
        fps=CAMERA_FPS,
        intrinsics=Intrinsics(fx=CAMERA_FOCAL_PX, fy=CAMERA_FOCAL_PX, cx=w / 2, cy=h / 2),
        extrinsics=ext,
    )


def camera_grid(width: float, depth: float, nx: int, ny: int) -> list[Camera]:
    cams: list[Camera] = []
    for j in range(ny):
        for i in range(nx):
            x = round(width * (i + 0.5) / nx, 3)
            y = round(depth * (j + 0.5) / ny, 3)
            cams.append(ceiling_camera(f"cam-{len(cams) + 1:02d}", x, y))
    return cams


def make_cameras(
    width: float, depth: float, plate_centres: Sequence[tuple[float, float, float]], gates: Sequence[Gate]
) -> list[Camera]:
    """The sparsest grid over the whole floor that sees every plate, plus one camera over each gate."""
    nx0 = math.ceil(width / CAMERA_MAX_SPACING_M[0])
    ny0 = math.ceil(depth / CAMERA_MAX_SPACING_M[1])
    points = np.array(plate_centres, dtype=float)
    shapes = sorted(
        ((nx, ny) for nx in range(nx0, nx0 + 6) for ny in range(ny0, ny0 + 6)), key=lambda s: (s[0] * s[1], s)
    )
    for nx, ny in shapes:
        cams = camera_grid(width, depth, nx, ny)
        models = [CameraModel(c) for c in cams]
        if all(any(m.sees(p) for m in models) for p in points):
            break
    else:
        raise ValueError("no camera grid up to 6 extra rows and columns sees every plate")
    for gate in gates:
        (x1, y1), (x2, y2) = gate.line
        cams.append(ceiling_camera(f"cam-{gate.id}", round((x1 + x2) / 2, 3), round((y1 + y2) / 2, 3)))
    return cams


def _tidy(v: float) -> float:
    """Round away float noise (and -0.0) so the file reads well and is identical across platforms."""
    r = round(float(v), 9)
    return 0.0 if r == 0 else r


# --- whole store ------------------------------------------------------------------------------------
def build_store(plan: StorePlan) -> StoreLayout:
    rng = np.random.default_rng(plan.seed)
    stock = build_products(rng, plan)
    gondolas, planogram = build_gondolas_and_planogram(rng, plan, stock)
    width, depth = floor_size(plan)
    gates = make_gates(width)
    draft = StoreLayout(  # without cameras, to place the plates
        store_id=plan.store_id,
        name=plan.name,
        floor=Floor(outline=[(0.0, 0.0), (width, 0.0), (width, depth), (0.0, depth)]),
        products=[it.product for items in stock for it in items],
        gondolas=gondolas,
        planogram=planogram,
        gates=gates,
    )
    centres = [g.center for g in draft.plate_geometry.values()]
    return StoreLayout(
        store_id=plan.store_id,
        name=plan.name,
        currency="USD",
        floor=Floor(outline=[(0.0, 0.0), (width, 0.0), (width, depth), (0.0, depth)]),
        products=[it.product for items in stock for it in items],
        gondolas=gondolas,
        planogram=planogram,
        cameras=make_cameras(width, depth, centres, gates),
        gates=gates,
    )


def render_yaml(store: StoreLayout) -> str:
    data: dict[str, Any] = store.model_dump(mode="json", exclude_none=True)  # Decimal prices -> "1.49"
    header = (
        f"# Store layout {store.store_id!r}: generated by tools/generate_stores.py; do not edit by hand.\n"
        "# Regenerate from the repository root with: .venv/bin/python tools/generate_stores.py\n"
        "# (or: make stores)\n"
        "# Units: metres and grams. Store coordinates: x east, y north, origin at the floor's south-west\n"
        "# corner. Plate ids are <gondola>-<shelf, S1 = bottom>-<plate, P01 = start of the front line>.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    # Name each planogram entry's product in a comment: the SKU alone means nothing to a reader.
    names = {p.sku: p.name for p in store.products}
    lines: list[str] = []
    in_planogram = False
    for line in body.splitlines():
        if not line.startswith((" ", "-")):
            in_planogram = line.startswith("planogram:")
        m = re.fullmatch(r"- sku: '([0-9]+)'", line)
        if in_planogram and m is not None:
            line = f"{line}  # {names[m.group(1)]}"
        lines.append(line)
    return header + "\n".join(lines) + "\n"


def write_stores(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for plan in PLANS:
        path = out_dir / f"{plan.store_id}.yaml"
        path.write_text(render_yaml(build_store(plan)), encoding="utf-8", newline="\n")
        load_store(path)  # raises ConfigError naming the field if the generator broke a rule
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for path in write_stores(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load a store file (products, prices) plus cloud-side settings (tax rate, promotions), and create
demo accounts and device keys. Keys are printed once: only their hashes are stored."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from cloud_api.core.security import hash_api_key, new_api_key
from cloud_api.db.models import Account, Device, Gate, Product, Promotion, Staff, Store
from cloud_api.domain.pricing import MultiBuy, to_cents
from cloud_api.services.container import Container, audit
from cloud_api.services.staff_auth import hash_password
from store_edge.layout import StoreLayout, load_store


@dataclass
class StoreConfig:
    """Cloud-side settings of a store (YAML): `tax_rate: "0.0825"`, `preauth: "0.00"`,
    `promotions: [{sku: "...", quantity: 3, price: "3.00"}]`."""

    tax_rate: Decimal = Decimal("0.08")
    preauth: Decimal = Decimal("0.00")
    promotions: list[MultiBuy] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path | None) -> StoreConfig:
        if path is None:
            return cls()
        raw: dict[str, Any] = yaml.safe_load(Path(path).read_text()) or {}
        return cls(
            tax_rate=Decimal(str(raw.get("tax_rate", "0.08"))),
            preauth=Decimal(str(raw.get("preauth", "0.00"))),
            promotions=[
                MultiBuy(str(p["sku"]), int(p["quantity"]), Decimal(str(p["price"]))) for p in raw.get("promotions", [])
            ],
        )


@dataclass
class SeedResult:
    store_id: str
    products: int
    promotions: int
    keys: dict[str, str]  # label -> key, only for what was created now
    devices: dict[str, str] = field(default_factory=dict)
    """Device kind (gate, edge) -> key, for devices created now."""
    staff: dict[str, str] = field(default_factory=dict)
    """Role -> key, for staff created now."""
    shoppers: list[dict[str, str]] = field(default_factory=list)
    """Accounts created now: account_id, email, payment_token, key."""
    logins: dict[str, dict[str, str]] = field(default_factory=dict)
    """Role -> {login, password} of the review console, for staff created now (shown once, stored hashed)."""


DEMO_SHOPPERS = (
    ("alice", "Alice Demo", "alice@example.com", "tok_visa"),
    ("bob", "Bob Declined", "bob@example.com", "tok_decline"),
)
DEMO_STAFF = (("reviewer", "reviewer"), ("manager", "manager"), ("admin", "admin"))


def floor_map(layout: StoreLayout) -> dict[str, Any]:
    """What the console's floor map draws, in store metres: the floor outline, each gondola's footprint,
    each plate's front edge (the plates of a ticket are highlighted) and the gates."""

    def point(p: Any) -> list[float]:
        return [round(float(p[0]), 3), round(float(p[1]), 3)]

    return {
        "outline": [point(p) for p in layout.floor.outline],
        "gondolas": [{"id": g.id, "footprint": [point(p) for p in g.footprint()]} for g in layout.gondolas],
        "plates": {
            pid: {"shelf_id": g.shelf_id, "front": [point(g.front_left), point(g.front_right)]}
            for pid, g in layout.plate_geometry.items()
        },
        "gates": [{"id": g.id, "kind": g.kind, "line": [point(p) for p in g.line]} for g in layout.gates],
    }


def seed(
    c: Container, store_file: str | Path, config: StoreConfig, demo_accounts: bool = True, shoppers: int = 0
) -> SeedResult:
    """`shoppers`: that many more test-mode accounts (acct-shopper-001, ...; card token tok_visa), for
    demos and load tests that need one account per shopper."""
    layout = load_store(store_file)
    now = c.now_ns()
    keys: dict[str, str] = {}
    result = SeedResult(layout.store_id, len(layout.products), len(config.promotions), keys)
    catalogue = {p.sku for p in layout.products}
    for promo in config.promotions:
        if promo.sku not in catalogue:
            raise SystemExit(f"promotion for SKU {promo.sku}, which is not in {store_file}")
    with c.transaction() as s:
        store = s.get(Store, layout.store_id)
        if store is None:
            store = Store(id=layout.store_id, created_ns=now, name=layout.name, currency=layout.currency)
            s.add(store)
        store.name, store.currency = layout.name, layout.currency
        store.tax_rate, store.preauth_cents = str(config.tax_rate), to_cents(config.preauth)
        store.floor_map = floor_map(layout)
        s.flush()
        existing = {p.sku: p for p in s.scalars(select(Product).where(Product.store_id == store.id))}
        for product in layout.products:
            row = existing.get(product.sku) or Product(store_id=store.id, sku=product.sku)
            row.name, row.price_cents = product.name, to_cents(product.price)
            s.add(row)
        for old in s.scalars(select(Promotion).where(Promotion.store_id == store.id)):
            s.delete(old)
        s.flush()
        for promo in config.promotions:
            s.add(
                Promotion(store_id=store.id, sku=promo.sku, quantity=promo.quantity, price_cents=to_cents(promo.price))
            )
        for gate in layout.gates:
            if gate.kind == "entry" and s.get(Gate, gate.id) is None:
                s.add(Gate(id=gate.id, store_id=store.id))
        for kind in ("gate", "edge"):
            device_id = f"{store.id}-{kind}-1"
            if s.get(Device, device_id) is None:
                key = new_api_key("dev")
                s.add(Device(id=device_id, store_id=store.id, kind=kind, key_hash=hash_api_key(key), created_ns=now))
                keys[f"device {device_id}"] = key
                result.devices[kind] = key
        extra = [
            (f"shopper-{i:03d}", f"Shopper {i:03d}", f"shopper-{i:03d}@example.com", "tok_visa")
            for i in range(1, shoppers + 1)
        ]
        if demo_accounts or extra:
            for short, name, email, token in (DEMO_SHOPPERS if demo_accounts else ()) + tuple(extra):
                if s.scalars(select(Account).where(Account.email == email)).first() is None:
                    key = new_api_key("shp")
                    s.add(
                        Account(
                            id=f"acct-{short}",
                            email=email,
                            name=name,
                            key_hash=hash_api_key(key),
                            payment_token=token,
                            created_ns=now,
                        )
                    )
                    keys[f"shopper acct-{short} ({email}, {token})"] = key
                    result.shoppers.append(
                        {"account_id": f"acct-{short}", "email": email, "payment_token": token, "key": key}
                    )
        if demo_accounts:
            for short, role in DEMO_STAFF:
                staff_id = f"{store.id}-{short}" if role != "admin" else "admin"
                if s.get(Staff, staff_id) is None:
                    key, password = new_api_key("stf"), secrets.token_urlsafe(12)
                    store_scope = None if role == "admin" else store.id
                    s.add(
                        Staff(
                            id=staff_id,
                            name=short.title(),
                            role=role,
                            store_id=store_scope,
                            key_hash=hash_api_key(key),
                            password_hash=hash_password(password),
                            created_ns=now,
                        )
                    )
                    keys[f"staff {staff_id} ({role})"] = key
                    keys[f"console login {staff_id} ({role}) password"] = password
                    result.staff[role] = key
                    result.logins[role] = {"login": staff_id, "password": password}
        audit(
            s,
            now,
            "system",
            "seed",
            "store",
            store.id,
            products=len(layout.products),
            promotions=len(config.promotions),
        )
    return result

"""Receipts as JSON and HTML (signed link), and their delivery by email and webhook with retries."""

from __future__ import annotations

import jinja2
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_api.adapters.notify import DeliveryError
from cloud_api.core.security import sign, verify
from cloud_api.db.models import Account, Delivery, ExtraCharge, Payment, Receipt, Store, Visit
from cloud_api.domain.pricing import from_cents
from cloud_api.schemas.receipt import ExtraChargeOut, ReceiptLineOut, ReceiptOut, UnpricedLineOut
from cloud_api.services.container import Container
from cloud_api.services.errors import ForbiddenError

DELIVERY_LEASE_NS = 30 * 10**9

_env = jinja2.Environment(autoescape=True)
PAGE = _env.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Receipt {{ r.receipt_id }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em}
td,th{padding:.2em .5em}td.n{text-align:right}tfoot td{font-weight:bold}</style></head>
<body><h1>{{ r.store_name }}</h1>
<p>Receipt {{ r.receipt_id }} for visit {{ r.visit_id }}. Payment: {{ r.payment_state }}.</p>
<table><thead><tr><th>Item</th><th>Qty</th><th>Price</th><th>Total</th></tr></thead><tbody>
{% for line in r.lines %}<tr><td>{{ line.name }}{% if line.promotion %} ({{ line.promotion }}){% endif %}</td>
<td class="n">{{ line.quantity }}</td><td class="n">{{ "%.2f"|format(line.unit_price) }}</td>
<td class="n">{{ "%.2f"|format(line.total) }}</td></tr>{% endfor %}
</tbody><tfoot>
<tr><td colspan="3">Subtotal</td><td class="n">{{ "%.2f"|format(r.subtotal) }}</td></tr>
<tr><td colspan="3">Savings</td><td class="n">-{{ "%.2f"|format(r.discount) }}</td></tr>
<tr><td colspan="3">Tax ({{ r.tax_rate }})</td><td class="n">{{ "%.2f"|format(r.tax) }}</td></tr>
<tr><td colspan="3">Total {{ r.currency }}</td><td class="n">{{ "%.2f"|format(r.total) }}</td></tr>
{% if r.refunded %}<tr><td colspan="3">Refunded</td><td class="n">{{ "%.2f"|format(r.refunded) }}</td></tr>{% endif %}
{% for x in r.extra_charges %}<tr><td colspan="3">Added later: {{ x.quantity }} x {{ x.name }} ({{ x.state }})</td>
<td class="n">{{ "%.2f"|format(x.amount) }}</td></tr>{% endfor %}
</tfoot></table>
<p>Something wrong? Dispute a line in the app.</p></body></html>
"""
)
TEXT = jinja2.Environment(autoescape=False).from_string(  # plain text: no HTML escaping
    """{{ r.store_name }}: receipt {{ r.receipt_id }}
{% for line in r.lines -%}
{{ line.quantity }} x {{ line.name }}  {{ "%.2f"|format(line.total) }}{% if line.promotion %} ({{ line.promotion }})
{%- endif %}
{% endfor %}
Subtotal {{ "%.2f"|format(r.subtotal) }}  Savings -{{ "%.2f"|format(r.discount) }}  Tax {{ "%.2f"|format(r.tax) }}
Total {{ r.currency }} {{ "%.2f"|format(r.total) }}  (payment: {{ r.payment_state }})

View it online: {{ r.web_url }}
"""
)


def signed_link(c: Container, receipt_id: str, created_ns: int) -> str:
    """The receipt's web link: valid for `receipt_link_ttl_s` after the receipt was made, and the same
    link every time it is shown (email, JSON, webhook)."""
    exp = created_ns // 10**9 + int(c.settings.receipt_link_ttl_s)
    sig = sign(c.link_key, f"{receipt_id}.{exp}".encode())
    return f"{c.settings.public_url.rstrip('/')}/v1/receipts/{receipt_id}/page?exp={exp}&sig={sig}"


def check_link(c: Container, receipt_id: str, exp: int, sig: str) -> None:
    if not verify(c.link_key, f"{receipt_id}.{exp}".encode(), sig):
        raise ForbiddenError("this receipt link is not valid: open the receipt from the app or the email")
    if c.now_ns() // 10**9 > exp:
        raise ForbiddenError("this receipt link has expired: open the receipt from the app")


def receipt_out(c: Container, s: Session, receipt: Receipt) -> ReceiptOut:
    store = s.get(Store, receipt.store_id)
    visit = s.get(Visit, receipt.visit_id)
    payment = s.scalars(select(Payment).where(Payment.visit_id == receipt.visit_id)).first()
    payment_state = (
        payment.state if payment is not None else ("nothing to pay" if receipt.total_cents == 0 else "pending")
    )
    return ReceiptOut(
        receipt_id=receipt.id,
        visit_id=receipt.visit_id,
        store_id=receipt.store_id,
        store_name=store.name if store else receipt.store_id,
        currency=receipt.currency,
        lines=[
            ReceiptLineOut(
                sku=line["sku"],
                name=line["name"],
                quantity=line["quantity"],
                unit_price=from_cents(line["unit_cents"]),
                gross=from_cents(line["gross_cents"]),
                discount=from_cents(line["discount_cents"]),
                promotion=line["promotion"],
                total=from_cents(line["gross_cents"] - line["discount_cents"]),
            )
            for line in receipt.lines
        ],
        unpriced=[UnpricedLineOut(**u) for u in receipt.unpriced],
        subtotal=from_cents(receipt.subtotal_cents),
        discount=from_cents(receipt.discount_cents),
        tax_rate=receipt.tax_rate,
        tax=from_cents(receipt.tax_cents),
        total=from_cents(receipt.total_cents),
        refunded=from_cents(receipt.refunded_cents),
        extra_charges=[
            ExtraChargeOut(
                sku=x.sku,
                name=x.name,
                quantity=x.quantity,
                amount=from_cents(x.amount_cents),
                state=x.state,
                reason=x.reason,
            )
            for x in s.scalars(
                select(ExtraCharge).where(ExtraCharge.visit_id == receipt.visit_id).order_by(ExtraCharge.created_ns)
            )
        ],
        payment_state=payment_state,
        created_ns=receipt.created_ns,
        closed_ns=visit.closed_ns if visit else None,
        web_url=signed_link(c, receipt.id, receipt.created_ns),
    )


def render_page(r: ReceiptOut) -> str:
    return PAGE.render(r=r)


def delivery_key(receipt_id: str, event: str) -> str:
    """The webhook's delivery id and Idempotency-Key: the same for every retry of one event."""
    return f"receipt-{receipt_id}" if event == "receipt.created" else f"receipt-{receipt_id}-{event.split('.')[-1]}"


def _subject(r: ReceiptOut, event: str) -> str:
    amount = f"{r.currency} {r.total:.2f}"
    if event == "receipt.paid":
        return f"Paid, thank you: your visit to {r.store_name}, {amount}"
    if r.payment_state == "declined":
        return f"Payment declined for your visit to {r.store_name} ({amount}): please update your card in the app"
    return f"Your receipt from {r.store_name}: {amount}"


def _claim(c: Container, delivery_id: int, now: int) -> bool:
    """Take a pending delivery for this worker (a lease), so two workers never send it both."""
    with c.transaction() as s:
        res = s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state == "pending", Delivery.next_attempt_ns <= now)
            .values(next_attempt_ns=now + DELIVERY_LEASE_NS)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


def deliver_pending(c: Container, visit_id: str | None = None) -> int:
    """Send every due delivery once (or those of one visit's receipt); failures back off exponentially."""
    now = c.now_ns()
    with c.sessions() as s:
        q = select(Delivery.id).where(Delivery.state == "pending", Delivery.next_attempt_ns <= now)
        if visit_id is not None:
            q = q.join(Receipt, Receipt.id == Delivery.receipt_id).where(Receipt.visit_id == visit_id)
        ids = list(s.scalars(q.order_by(Delivery.id).limit(500)))
    sent = 0
    for delivery_id in ids:
        if not _claim(c, delivery_id, now):
            continue
        with c.sessions() as s:
            delivery = s.get(Delivery, delivery_id)
            assert delivery is not None
            receipt = s.get(Receipt, delivery.receipt_id)
            assert receipt is not None
            account = s.get(Account, receipt.account_id)
            out = receipt_out(c, s, receipt)
        error: str | None = None
        try:
            if delivery.channel == "email":
                if c.email is None or account is None:
                    raise DeliveryError("email is not configured")
                subject = _subject(out, delivery.event)
                c.email.send(account.email, subject, TEXT.render(r=out), render_page(out))
            else:
                if c.webhook is None:
                    raise DeliveryError("webhook is not configured")
                data = out.model_dump(mode="json") | {"account_id": receipt.account_id}
                c.webhook.send(delivery.event, delivery_key(receipt.id, delivery.event), data)
        except DeliveryError as e:
            error = str(e)
        done = c.now_ns()
        with c.transaction() as s:
            delivery = s.get(Delivery, delivery_id)
            assert delivery is not None
            delivery.attempts += 1
            if error is None:
                delivery.state, delivery.sent_ns, delivery.last_error = "sent", done, None
                sent += 1
            else:
                delivery.last_error = error
                if delivery.attempts >= c.settings.webhook_attempts:
                    delivery.state = "failed"
                else:
                    backoff = c.settings.webhook_first_backoff_s * 2 ** (delivery.attempts - 1)
                    delivery.next_attempt_ns = done + round(backoff * 1e9)
    return sent

"""The payment port and its adapters. Amounts are integer minor units (cents).

`PaymentGateway` is what settlement and disputes call. Every call carries an idempotency key: calling
again with the same key returns the first outcome and moves no money twice. A timeout raises
`PaymentTimeoutError` (outcome unknown): the caller retries later with the same key.
"""

from __future__ import annotations

import secrets
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

PaymentStatus = Literal["authorized", "succeeded", "declined", "canceled", "refunded"]


class PaymentTimeoutError(Exception):
    """The processor did not answer in time: the outcome is unknown; retry with the same key."""


class PaymentError(Exception):
    """The processor refused the request itself (bad reference, over-refund): not a decline."""


@dataclass(frozen=True)
class PaymentResult:
    status: PaymentStatus
    ref: str | None
    amount_cents: int
    message: str | None = None


class PaymentGateway(ABC):
    @abstractmethod
    def authorize(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> PaymentResult:
        """Hold `amount_cents` on the payment method (manual capture)."""

    @abstractmethod
    def capture(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentResult:
        """Take up to the authorised amount; the rest of the hold is released."""

    @abstractmethod
    def cancel(self, ref: str, idempotency_key: str) -> PaymentResult:
        """Release an authorisation without taking anything."""

    @abstractmethod
    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentResult:
        """Give back part or all of a captured payment."""

    def charge(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> PaymentResult:
        auth = self.authorize(token, amount_cents, currency, idempotency_key + "-auth")
        if auth.status != "authorized" or auth.ref is None:
            return auth
        return self.capture(auth.ref, amount_cents, idempotency_key + "-capture")


@dataclass
class TestIntent:
    id: str
    token: str
    amount_cents: int
    currency: str
    status: str  # requires_capture | succeeded | canceled | declined
    captured_cents: int = 0
    refunded_cents: int = 0
    events: list[str] = field(default_factory=list)


class TestModePaymentGateway(PaymentGateway):
    """An in-memory processor for tests and demos, with its own idempotency.

    Tokens: `tok_visa` (and any other `tok_ok...`) succeed; `tok_decline` is declined;
    `tok_timeout` never answers in time; `tok_timeout_once` records the authorisation but times out on
    the first call (the response is lost), then answers normally: a retry with the same key must find
    the first authorisation rather than make a second; `tok_refund_timeout_once` pays normally but
    loses the answer of each refund's first call; `tok_refused` is refused outright (a processor
    error, not a decline); `tok_refund_refused_once` pays normally, each refund is refused once.
    """

    __test__ = False  # not a pytest class

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.intents: dict[str, TestIntent] = {}
        self._results: dict[str, PaymentResult] = {}
        self._lock = threading.Lock()
        self._lost_once: set[str] = set()
        self.calls = 0

    def _pause(self) -> None:
        if self.latency_s:
            time.sleep(self.latency_s)

    def authorize(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> PaymentResult:
        self._pause()
        with self._lock:
            self.calls += 1
            if token == "tok_timeout":
                raise PaymentTimeoutError("test processor: tok_timeout never answers")
            if token == "tok_refused":
                raise PaymentError("test processor: tok_refused is refused (not a decline)")
            done = self._results.get(idempotency_key)
            if done is None:
                if amount_cents <= 0:
                    raise PaymentError("amount must be positive")
                intent_id = "pi_test_" + secrets.token_hex(8)
                declined = token == "tok_decline" or not token.startswith("tok_")
                intent = TestIntent(
                    intent_id, token, amount_cents, currency, "declined" if declined else "requires_capture"
                )
                self.intents[intent_id] = intent
                if declined:
                    done = PaymentResult("declined", intent_id, 0, "Your card was declined.")
                else:
                    done = PaymentResult("authorized", intent_id, amount_cents)
                self._results[idempotency_key] = done
            if token == "tok_timeout_once" and idempotency_key not in self._lost_once:
                self._lost_once.add(idempotency_key)
                raise PaymentTimeoutError("test processor: the answer was lost once")
            return done

    def _intent(self, ref: str) -> TestIntent:
        intent = self.intents.get(ref)
        if intent is None:
            raise PaymentError(f"no such payment intent: {ref}")
        return intent

    def capture(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentResult:
        self._pause()
        with self._lock:
            self.calls += 1
            done = self._results.get(idempotency_key)
            if done is not None:
                return done
            intent = self._intent(ref)
            if intent.status != "requires_capture":
                raise PaymentError(f"intent {ref} is {intent.status}: it cannot be captured")
            if amount_cents > intent.amount_cents:
                raise PaymentError(f"cannot capture {amount_cents}: only {intent.amount_cents} is authorised")
            intent.status, intent.captured_cents = "succeeded", amount_cents
            intent.events.append(f"capture {amount_cents}")
            done = PaymentResult("succeeded", ref, amount_cents)
            self._results[idempotency_key] = done
            return done

    def cancel(self, ref: str, idempotency_key: str) -> PaymentResult:
        with self._lock:
            self.calls += 1
            done = self._results.get(idempotency_key)
            if done is not None:
                return done
            intent = self._intent(ref)
            if intent.status != "requires_capture":
                raise PaymentError(f"intent {ref} is {intent.status}: it cannot be canceled")
            intent.status = "canceled"
            intent.events.append("cancel")
            done = PaymentResult("canceled", ref, 0)
            self._results[idempotency_key] = done
            return done

    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentResult:
        with self._lock:
            self.calls += 1
            done = self._results.get(idempotency_key)
            if done is not None:
                return done
            intent = self._intent(ref)
            if intent.status != "succeeded":
                raise PaymentError(f"intent {ref} is {intent.status}: nothing to refund")
            if intent.token == "tok_refund_refused_once" and ("refused:" + idempotency_key) not in self._lost_once:
                self._lost_once.add("refused:" + idempotency_key)
                raise PaymentError("test processor: this refund is refused once")
            if intent.refunded_cents + amount_cents > intent.captured_cents:
                raise PaymentError("refund exceeds the captured amount")
            intent.refunded_cents += amount_cents
            intent.events.append(f"refund {amount_cents}")
            done = PaymentResult("refunded", "re_test_" + secrets.token_hex(8), amount_cents)
            self._results[idempotency_key] = done
            if intent.token == "tok_refund_timeout_once":
                self._lost_once.add(idempotency_key)
                raise PaymentTimeoutError("test processor: the refund's answer was lost once")
            return done

    def captured_total(self) -> int:
        with self._lock:
            return sum(i.captured_cents for i in self.intents.values())


class StripePaymentGateway(PaymentGateway):
    """Stripe PaymentIntents with manual capture, through the official `stripe` package.

    `api_base` points the client at another server (tests use a local one speaking the same endpoints).
    Declines arrive as `CardError`; network failures and timeouts as `APIConnectionError`.
    """

    def __init__(self, api_key: str, api_base: str | None = None, timeout_s: float = 10.0) -> None:
        import stripe

        self._stripe = stripe
        options: dict[str, Any] = {"http_client": stripe.RequestsClient(timeout=timeout_s), "max_network_retries": 0}
        if api_base:
            options["base_addresses"] = {"api": api_base.rstrip("/")}
        self.client = stripe.StripeClient(api_key, **options)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        stripe = self._stripe
        try:
            return fn(*args, **kwargs)
        except stripe.CardError as e:
            return e
        except stripe.APIConnectionError as e:
            raise PaymentTimeoutError(f"payment processor unreachable: {e.user_message or e}") from e
        except stripe.StripeError as e:
            if e.http_status is not None and e.http_status >= 500:
                raise PaymentTimeoutError(f"payment processor error {e.http_status}") from e
            raise PaymentError(str(e.user_message or e)) from e

    def authorize(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> PaymentResult:
        out = self._call(
            self.client.v1.payment_intents.create,
            params={
                "amount": amount_cents,
                "currency": currency.lower(),
                "payment_method": token,
                "confirm": True,
                "capture_method": "manual",
                "off_session": True,
            },
            options={"idempotency_key": idempotency_key},
        )
        if isinstance(out, self._stripe.CardError):
            body: dict[str, Any] = out.json_body if isinstance(out.json_body, dict) else {}
            intent: dict[str, Any] = body.get("error", {}).get("payment_intent") or {}
            return PaymentResult("declined", intent.get("id"), 0, out.user_message or "declined")
        if out.status != "requires_capture":
            return PaymentResult("declined", out.id, 0, f"payment intent is {out.status}")
        return PaymentResult("authorized", out.id, int(out.amount))

    def capture(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentResult:
        out = self._call(
            self.client.v1.payment_intents.capture,
            ref,
            params={"amount_to_capture": amount_cents},
            options={"idempotency_key": idempotency_key},
        )
        if isinstance(out, self._stripe.CardError):
            return PaymentResult("declined", ref, 0, out.user_message or "declined")
        return PaymentResult("succeeded", out.id, int(out.amount_received))

    def cancel(self, ref: str, idempotency_key: str) -> PaymentResult:
        out = self._call(self.client.v1.payment_intents.cancel, ref, options={"idempotency_key": idempotency_key})
        if isinstance(out, self._stripe.CardError):
            raise PaymentError(out.user_message or "cancel refused")
        return PaymentResult("canceled", out.id, 0)

    def refund(self, ref: str, amount_cents: int, idempotency_key: str) -> PaymentResult:
        out = self._call(
            self.client.v1.refunds.create,
            params={"payment_intent": ref, "amount": amount_cents},
            options={"idempotency_key": idempotency_key},
        )
        if isinstance(out, self._stripe.CardError):
            raise PaymentError(out.user_message or "refund refused")
        return PaymentResult("refunded", out.id, int(out.amount))

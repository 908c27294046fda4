"""Periodic work: review deadlines, payments left unsettled, receipt deliveries."""

from __future__ import annotations

import logging
import threading

from cloud_api.schemas.staff import SweepOut
from cloud_api.services import disputes, extra_charges, receipts, settlement
from cloud_api.services.container import Container

log = logging.getLogger(__name__)


def run_due(c: Container) -> SweepOut:
    released = settlement.release_expired_holds(c)
    retried = settlement.retry_unsettled(c)
    refunds = disputes.retry_refunds(c)
    extras = extra_charges.retry_extra_charges(c)
    sent = receipts.deliver_pending(c)
    return SweepOut(
        released_holds=released,
        retried_payments=retried,
        retried_refunds=refunds,
        retried_extra_charges=extras,
        deliveries_sent=sent,
    )


class Sweeper:
    def __init__(self, c: Container) -> None:
        self.c = c
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloud-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.c.settings.sweep_interval_s):
            try:
                run_due(self.c)
            except Exception:  # keep sweeping: the next round retries
                log.exception("sweep failed")

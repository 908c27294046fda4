from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from store_edge.live.mqtt import BrokerAddress, EmbeddedBroker, parse_broker_url


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerAddress]:
    """The real Mosquitto when MQTT_URL names it (CI), else the embedded broker a fresh machine uses."""
    url = os.environ.get("MQTT_URL")
    if url:
        yield parse_broker_url(url)
        return
    embedded = EmbeddedBroker().start()
    yield embedded.address
    embedded.stop()

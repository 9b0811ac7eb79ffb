"""Fixtures for the trust tests: provisioned federations on a real Mosquitto (see support.trust)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.trust import Federation, Probe, make_federation  # this folder is on pytest's pythonpath

from fmfl.mqtt.mosquitto import mosquitto_binary


def _need_mosquitto() -> None:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run scripts/install.sh (apt-get install mosquitto)")


@pytest.fixture(scope="module")
def federation() -> Iterator[Federation]:
    """dev-1, dev-2 and the gateway, password auth over TLS; shared by a module's read-only tests."""
    _need_mosquitto()
    fed = make_federation().start()
    try:
        yield fed
    finally:
        fed.cleanup()


@pytest.fixture
def fresh_federation() -> Iterator[Federation]:
    """A federation of its own, for tests that revoke or restart."""
    _need_mosquitto()
    fed = make_federation(("dev-1", "dev-2", "dev-3")).start()
    try:
        yield fed
    finally:
        fed.cleanup()


@pytest.fixture(scope="module")
def cert_federation() -> Iterator[Federation]:
    """The same with --client-certs: the broker requires a CA-signed certificate, CN = username."""
    _need_mosquitto()
    fed = make_federation(("dev-1", "dev-2"), client_certs=True).start()
    try:
        yield fed
    finally:
        fed.cleanup()


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    """Probes a test opened; closed afterwards."""
    opened: list[Probe] = []
    yield opened
    for probe in opened:
        probe.close()

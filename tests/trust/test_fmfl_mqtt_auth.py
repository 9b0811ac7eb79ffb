"""fmfl.mqtt (what `fmfl client` and `fmfl aggregator` connect with) against the provisioned broker.

A refused CONNACK must surface as one clear error, not as paho's silent reconnect loop.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.trust import Federation

from fmfl.aggregator.cli.aggregator import mqtt_options
from fmfl.cli import build_parser
from fmfl.mqtt import BrokerDown, BrokerRefused, connect_with_backoff, make_client
from fmfl.mqtt.connection import MqttOptions
from fmfl.provision import pki


def _no_sleep(_: float) -> None:
    raise AssertionError("a refusal must not be retried")


def _connect(opts: MqttOptions, *, attempts: int = 3, sleep: Any = _no_sleep) -> tuple[Any, list[Any]]:
    client = make_client("fmfl-probe", opts, clean_session=True)
    seen: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p=None: seen.append(reason)
    connect_with_backoff(client, opts, attempts=attempts, sleep=sleep, connack_timeout=5)
    return client, seen


def test_device_connects_with_its_provisioned_credentials(federation: Federation) -> None:
    client, seen = _connect(federation.options("dev-1"))
    try:
        assert client.is_connected()
        assert [str(r) for r in seen] == ["Success"]
    finally:
        client.disconnect()


def test_wrong_password_raises_broker_refused_at_once(federation: Federation) -> None:
    with pytest.raises(BrokerRefused) as err:
        _connect(federation.options("dev-1", password="wrong"))
    assert str(err.value) == (
        f"the MQTT broker at 127.0.0.1:{federation.port} refused the connection: Not authorized (user 'dev-1'; "
        "check --username/--password or the client certificate, and that this device has not been revoked)"
    )


def test_anonymous_raises_broker_refused(federation: Federation) -> None:
    with pytest.raises(BrokerRefused, match=r"refused the connection: Not authorized \(no username \(anonymous\)"):
        _connect(federation.options(None))


def test_the_callers_on_connect_still_sees_the_refusal(federation: Federation) -> None:
    client = make_client("fmfl-probe", federation.options("dev-1", password="wrong"))
    seen: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p=None: seen.append(reason)
    with pytest.raises(BrokerRefused):
        connect_with_backoff(client, federation.options("dev-1", password="wrong"), sleep=_no_sleep)
    assert [str(r) for r in seen] == ["Not authorized"]
    assert client.on_connect is not None
    assert client.on_connect.__name__ == "<lambda>"


def test_wrong_ca_is_retried_then_broker_down(federation: Federation, tmp_path: Path) -> None:
    """A TLS failure may be a device clock not yet set by NTP, so it is retried; the message names the cause."""
    other = tmp_path / "other.crt"
    other.write_bytes(pki.make_ca("other").cert_pem)
    sleeps: list[float] = []
    with pytest.raises(BrokerDown, match=r"after 2 attempts: .*CERTIFICATE_VERIFY_FAILED"):
        _connect(federation.options("dev-1", cafile=other), attempts=2, sleep=sleeps.append)
    assert len(sleeps) == 1


def test_missing_client_certificate_is_broker_down_with_a_hint(cert_federation: Federation) -> None:
    with pytest.raises(BrokerDown, match=r"closed before the broker's CONNACK .*requires a client certificate"):
        _connect(cert_federation.options("dev-1"), attempts=2, sleep=lambda _: None)


def test_device_connects_with_its_client_certificate(cert_federation: Federation) -> None:
    client, seen = _connect(cert_federation.options("dev-1", cert=True))
    try:
        assert client.is_connected()
        assert [str(r) for r in seen] == ["Success"]
    finally:
        client.disconnect()


def test_aggregator_cli_options_reach_the_provisioned_broker(federation: Federation, tmp_path: Path) -> None:
    gw = federation.layout.gateway("aggregator")
    args = build_parser().parse_args([
        "aggregator", "--bundle", str(tmp_path), "--broker", f"mqtts://127.0.0.1:{federation.port}",
        "--state-dir", str(tmp_path), "--rounds", "1", "--clients-per-round", "1", "--federation", "trust",
        "--username", "aggregator", "--password", federation.password("aggregator"), "--cafile", str(gw.cafile),
    ])
    opts = mqtt_options(args)
    assert opts.tls
    assert opts.username == "aggregator"
    client, _ = _connect(opts)
    client.disconnect()
    with pytest.raises(BrokerRefused, match="Not authorized"):
        _connect(replace(opts, password="stale"))


def test_client_cli_options_parse_to_the_same_options(federation: Federation, tmp_path: Path) -> None:
    from fmfl.mqtt.cli_options import broker_options

    dev = federation.layout.device("dev-1")
    args = build_parser().parse_args([
        "client", "--bundle", str(tmp_path), "--data", str(tmp_path), "--client-id", "dev-1",
        "--broker", f"mqtts://127.0.0.1:{federation.port}", "--username", "dev-1",
        "--password", federation.password("dev-1"), "--cafile", str(dev.cafile),
    ])
    opts = broker_options(args)  # what fmfl.edge_client.cli.run_client calls (not a copy of its body)
    assert (opts.host, opts.port, opts.tls) == ("127.0.0.1", federation.port, True)
    assert (opts.username, opts.password) == ("dev-1", federation.password("dev-1"))
    assert opts.cafile == dev.cafile
    client, _ = _connect(opts)
    client.disconnect()

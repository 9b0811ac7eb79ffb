"""``fmfl provision --revoke``: a revoked device is refused by the broker, and nothing else changes."""

from __future__ import annotations

import os
import queue
import signal
import time

import pytest
from cryptography import x509
from support.trust import Federation, Probe, make_federation

from fmfl.cli import main
from fmfl.provision import DeviceStatus, Registry


def _revoke(fed: Federation, device_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["provision", "--out", str(fed.layout.root), "--revoke", device_id])
    out, err = capsys.readouterr()
    return rc, out, err


def _reload(fed: Federation) -> None:
    assert fed.broker is not None
    assert fed.broker.pid is not None
    os.kill(fed.broker.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "Reloading config" not in fed.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the reload message is logged before the files are read again


def test_revoked_device_is_refused_after_a_reload(fresh_federation: Federation,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # Prepare
    fed = fresh_federation
    before = fed.layout.broker.password_file.read_text()
    assert not Probe(fed.options("dev-2")).connect().is_failure
    # Execute
    rc, out, _ = _revoke(fed, "dev-2", capsys)
    _reload(fed)
    # Assert
    assert rc == 0
    assert "revoked device 'dev-2'" in out
    assert "kill -HUP" in out
    reason = Probe(fed.options("dev-2")).connect()
    assert reason.is_failure
    assert str(reason) == "Not authorized"
    for other in ("dev-1", "dev-3", "aggregator"):
        assert not Probe(fed.options(other)).connect().is_failure
    # Only dev-2's line left the password file; the other hashes are untouched.
    after = fed.layout.broker.password_file.read_text()
    assert after.splitlines() == [line for line in before.splitlines() if not line.startswith("dev-2:")]


def test_revoked_device_is_refused_after_a_restart(fresh_federation: Federation,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    fed = fresh_federation
    assert _revoke(fed, "dev-1", capsys)[0] == 0
    fed.restart()
    reason = Probe(fed.options("dev-1")).connect()
    assert reason.is_failure
    assert str(reason) == "Not authorized"
    assert not Probe(fed.options("dev-2")).connect().is_failure


def test_a_connected_device_is_disconnected_when_revoked(fresh_federation: Federation, probes: list[Probe],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A stolen device that stays connected: Mosquitto re-authenticates every client on SIGHUP and drops it."""
    fed, t = fresh_federation, fresh_federation.topics
    gateway, dev2, dev1 = (Probe(fed.options(n)) for n in ("aggregator", "dev-2", "dev-1"))
    probes += [gateway, dev2, dev1]
    for probe in (gateway, dev2, dev1):
        assert not probe.connect().is_failure
    gateway.subscribe(t.all_updates)
    assert _revoke(fed, "dev-2", capsys)[0] == 0
    _reload(fed)
    deadline = time.monotonic() + 5
    while dev2.client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not dev2.client.is_connected()
    assert "Client dev-2 disconnected" in fed.log()
    dev2.client.publish(t.update("dev-2"), b"after revocation", qos=1)  # queued; its reconnects are refused
    dev1.publish(t.update("dev-1"), b"still a member")
    assert gateway.receive() == (t.update("dev-1"), b"still a member")
    with pytest.raises(queue.Empty):
        gateway.receive(timeout=1.5)  # paho retries after 1 s: that reconnect is refused too


def test_revocation_updates_registry_acl_and_crl(fresh_federation: Federation,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fed = fresh_federation
    serial = fed.registry.get("dev-3").cert_serial
    assert _revoke(fed, "dev-3", capsys)[0] == 0
    registry = Registry.from_json(fed.layout.registry.read_text())
    record = registry.get("dev-3")
    assert record.status is DeviceStatus.REVOKED
    assert record.revoked_at is not None
    assert [d.device_id for d in registry.active] == ["dev-1", "dev-2"]
    acl = fed.layout.broker.acl_file.read_text()
    assert "user dev-3" not in acl
    assert "dev-3" not in acl
    assert "user dev-1" in acl
    crl = x509.load_pem_x509_crl(fed.layout.broker.crlfile.read_bytes())
    assert [r.serial_number for r in crl] == [serial]


def test_revoking_twice_rewrites_the_broker_files(fresh_federation: Federation,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fed = fresh_federation
    _revoke(fed, "dev-2", capsys)
    first = Registry.from_json(fed.layout.registry.read_text()).get("dev-2").revoked_at
    rc, out, _ = _revoke(fed, "dev-2", capsys)
    assert rc == 0
    assert "was already revoked; broker files rewritten" in out
    assert Registry.from_json(fed.layout.registry.read_text()).get("dev-2").revoked_at == first


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("dev-9", "no device 'dev-9' in this federation (devices: dev-1, dev-2, dev-3)"),
        ("aggregator", "'aggregator' is the gateway; provision the federation again (--force) to replace it"),
    ],
)
def test_revoke_refusals(fresh_federation: Federation, capsys: pytest.CaptureFixture[str], device: str,
                         message: str) -> None:
    fed = fresh_federation
    registry_before = fed.layout.registry.read_bytes()
    passwd_before = fed.layout.broker.password_file.read_bytes()
    rc, _, err = _revoke(fed, device, capsys)
    assert rc == 2
    assert message in err
    assert fed.layout.registry.read_bytes() == registry_before
    assert fed.layout.broker.password_file.read_bytes() == passwd_before


def test_revoke_needs_a_provisioned_folder(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["provision", "--out", str(tmp_path), "--revoke", "dev-1"])
    assert rc == 2
    assert f"{tmp_path} is not a provisioned federation (devices.json is missing)" in capsys.readouterr().err


def test_revoke_takes_no_provisioning_options(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["provision", "--out", str(tmp_path), "--revoke", "dev-1", "--federation", "x"])
    assert rc == 2
    assert "--revoke takes only --out" in capsys.readouterr().err


def test_revoked_client_certificate_is_refused_by_its_crl(capsys: pytest.CaptureFixture[str]) -> None:
    """With --client-certs the password file is not consulted: the CRL is what shuts the device out."""
    fed = make_federation(("dev-1", "dev-2"), client_certs=True).start()
    try:
        assert not Probe(fed.options("dev-2", cert=True)).connect().is_failure
        rc, out, _ = _revoke(fed, "dev-2", capsys)
        assert rc == 0
        assert "restart the broker to load the new CRL" in out
        fed.restart()
        reason = Probe(fed.options("dev-2", cert=True)).connect()
        assert isinstance(reason, str)
        assert reason.startswith("lost:")
        # OpenSSL's verdict on a serial listed in the CRL; mosquitto may log it a moment after the client saw the drop
        deadline = time.monotonic() + 10
        while "certificate verify failed" not in fed.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "certificate verify failed" in fed.log()
        assert not Probe(fed.options("dev-1", cert=True)).connect().is_failure
    finally:
        fed.cleanup()

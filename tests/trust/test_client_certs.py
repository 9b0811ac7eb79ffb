"""``--client-certs``: the broker requires a CA-signed certificate and takes its CN as the username."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from support.trust import Federation, Probe

from fmfl.provision import pki


def test_device_without_a_certificate_is_refused(cert_federation: Federation) -> None:
    """Even with the right password: the TLS handshake fails before MQTT starts."""
    fed = cert_federation
    reason = Probe(fed.options("dev-1")).connect()
    assert isinstance(reason, str)
    assert reason.startswith("lost:")
    assert "peer did not return a certificate" in fed.log()


def test_device_with_its_certificate_is_accepted_as_its_cn(cert_federation: Federation,
                                                           probes: list[Probe]) -> None:
    probe = Probe(cert_federation.options("dev-1", cert=True))
    probes.append(probe)
    assert not probe.connect().is_failure
    assert "u'dev-1'" in cert_federation.log()


def test_certificate_from_another_ca_is_refused(cert_federation: Federation, tmp_path: Path) -> None:
    rogue_ca = pki.make_ca("rogue")
    rogue = pki.make_client_cert(rogue_ca, "dev-1", days=1)
    (tmp_path / "c.crt").write_bytes(rogue.cert_pem)
    (tmp_path / "c.key").write_bytes(rogue.key_pem)
    opts = replace(cert_federation.options("dev-1", cert=True), certfile=tmp_path / "c.crt",
                   keyfile=tmp_path / "c.key")
    reason = Probe(opts).connect()
    assert isinstance(reason, str)
    assert reason.startswith("lost:")


def test_claimed_username_does_not_override_the_certificate(cert_federation: Federation,
                                                            probes: list[Probe]) -> None:
    """dev-1's certificate with username dev-2: the broker knows it as dev-1, so dev-2's topics stay closed."""
    fed, t = cert_federation, cert_federation.topics
    gateway = Probe(fed.options("aggregator", cert=True))
    probes.append(gateway)
    assert not gateway.connect().is_failure
    gateway.subscribe(t.all_updates)
    liar = Probe(replace(fed.options("dev-1", cert=True), username="dev-2", password="whatever"))
    probes.append(liar)
    assert not liar.connect().is_failure
    liar.publish(t.update("dev-2"), b"as dev-2")
    liar.publish(t.update("dev-1"), b"as dev-1")
    assert gateway.receive() == (t.update("dev-1"), b"as dev-1")

"""What `fmfl provision` writes: files, modes, certificates, registry, ACL and config; and what it refuses."""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.trust import broker_root

from fmfl.bundle.signing import load_private_key
from fmfl.cli import main
from fmfl.provision import DeviceStatus, Layout, Registry
from fmfl.provision.files import broker_group


@pytest.fixture
def root() -> Iterator[Path]:
    path = broker_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _provision(out: Path, *extra: str) -> int:
    return main(["provision", "--out", str(out), "--federation", "fed", *extra])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_the_layout_with_private_keys_0600(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Execute
    assert _provision(root / "out", "--devices", "dev-1,dev-2") == 0
    # Assert
    layout = Layout(root / "out")
    out = capsys.readouterr().out
    assert "provisioned federation 'fed': 2 device(s), gateway 'aggregator'" in out
    assert f"mosquitto -c {layout.broker.conf.resolve()}" in out
    for ident in (layout.device("dev-1"), layout.device("dev-2"), layout.gateway("aggregator")):
        assert _mode(ident.root) == 0o700
        assert _mode(ident.password) == 0o600
        assert _mode(ident.keyfile) == 0o600
        assert _mode(ident.certfile) == 0o644
        assert _mode(ident.cafile) == 0o644
    assert _mode(layout.device("dev-1").signing_key) == 0o600
    assert not layout.gateway("aggregator").signing_key.exists()
    assert _mode(layout.ca_key) == 0o600
    assert _mode(layout.ca_dir) == 0o700
    assert not list((root / "out").glob(".fmfl-provision-*"))  # the staging folder is gone


def test_broker_files_are_readable_by_the_mosquitto_user_only(root: Path) -> None:
    assert _provision(root / "out", "--count", "1") == 0
    broker = Layout(root / "out").broker
    gid = broker_group()
    if gid is None:  # not root: the broker runs as us
        assert _mode(broker.root) == 0o700
        assert _mode(broker.keyfile) == 0o600
        return
    for path, mode in ((broker.root, 0o750), (broker.keyfile, 0o640), (broker.password_file, 0o640)):
        assert (_mode(path), path.stat().st_gid, path.stat().st_uid) == (mode, gid, 0), path
    for path in (broker.conf, broker.acl_file, broker.cafile, broker.certfile, broker.crlfile):
        assert _mode(path) == 0o644, path


def test_certificates_chain_to_the_ca_with_the_right_names(root: Path) -> None:
    assert _provision(root / "out", "--devices", "dev-1", "--hostname", "gw.local", "--ip", "10.0.0.5") == 0
    layout = Layout(root / "out")
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(layout.broker.certfile.read_bytes())
    device = x509.load_pem_x509_certificate(layout.device("dev-1").certfile.read_bytes())
    for cert in (server, device):
        cert.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw.local"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert ExtendedKeyUsageOID.SERVER_AUTH in server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert device.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-1"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in device.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_registry_holds_each_devices_signing_key_and_cert_serial(root: Path) -> None:
    assert _provision(root / "out", "--count", "3", "--gateway-id", "gw-1") == 0
    layout = Layout(root / "out")
    registry = Registry.from_json(layout.registry.read_text())
    assert (registry.federation, registry.gateway_id, registry.client_certs) == ("fed", "gw-1", False)
    assert [d.device_id for d in registry.devices] == ["dev-1", "dev-2", "dev-3"]
    for record in registry.devices:
        key = load_private_key(layout.device(record.device_id).signing_key)
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert base64.b64decode(record.public_key) == raw
        assert record.status is DeviceStatus.ACTIVE
        cert = x509.load_pem_x509_certificate(layout.device(record.device_id).certfile.read_bytes())
        assert cert.serial_number == record.cert_serial


def test_acl_gives_a_device_only_its_own_topics(root: Path) -> None:
    assert _provision(root / "out", "--devices", "dev-1,dev-2", "--prefix", "acme") == 0
    blocks = Layout(root / "out").broker.acl_file.read_text().split("\n\n")
    assert blocks[2].splitlines() == [
        "user dev-1",
        "topic write acme/fed/hello/dev-1",
        "topic write acme/fed/status/dev-1",
        "topic write acme/fed/update/dev-1",
        "topic read acme/fed/task",
        "topic read acme/fed/global/+",
        "topic read acme/fed/ack/dev-1",
    ]
    assert blocks[1].splitlines()[0] == "user aggregator"
    assert "topic write acme/fed/ack/+" in blocks[1]
    assert "topic read acme/fed/update/+" in blocks[1]


@pytest.mark.parametrize("client_certs", [False, True])
def test_config_requires_tls_and_authentication(root: Path, client_certs: bool) -> None:
    flags = ["--client-certs"] if client_certs else []
    assert _provision(root / "out", "--count", "1", "--port", "18884", "--bind", "127.0.0.1", *flags) == 0
    broker = Layout(root / "out").broker
    lines = broker.conf.read_text().splitlines()
    for expected in ("allow_anonymous false", f"password_file {broker.password_file.resolve()}",
                     f"acl_file {broker.acl_file.resolve()}", "listener 18884 127.0.0.1",
                     f"certfile {broker.certfile.resolve()}", "use_username_as_clientid true"):
        assert expected in lines
    cert_lines = {"require_certificate true", "use_identity_as_username true",
                  f"crlfile {broker.crlfile.resolve()}"}
    assert cert_lines <= set(lines) if client_certs else not cert_lines & set(lines)
    assert not any(line.startswith("listener 1883") for line in lines)  # no plaintext listener


def test_existing_ca_is_not_replaced_without_force(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Prepare
    out = root / "out"
    assert _provision(out, "--devices", "dev-1") == 0
    ca_key = Layout(out).ca_key.read_bytes()
    registry = Layout(out).registry.read_bytes()
    capsys.readouterr()
    # Execute
    rc = _provision(out, "--devices", "dev-9")
    # Assert
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a provisioned federation ({out / 'devices.json'}); refusing to replace its CA" in err
    assert Layout(out).ca_key.read_bytes() == ca_key
    assert Layout(out).registry.read_bytes() == registry
    assert not Layout(out).device("dev-9").root.exists()


def test_force_replaces_everything(root: Path) -> None:
    out = root / "out"
    assert _provision(out, "--devices", "dev-1") == 0
    ca_key = Layout(out).ca_key.read_bytes()
    assert _provision(out, "--devices", "dev-2", "--force") == 0
    assert Layout(out).ca_key.read_bytes() != ca_key
    assert not Layout(out).device("dev-1").root.exists()
    assert Layout(out).device("dev-2").password.exists()
    assert "dev-1" not in Layout(out).broker.password_file.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "dev-1,dev-1"], "device id(s) given twice: dev-1"),
        (["--devices", "aggregator,dev-1"], "the gateway id 'aggregator' is also listed as a device"),
        (["--devices", "dev/1"], "device id 'dev/1' must be 1..64 of A-Z a-z 0-9"),
        (["--devices", "+"], "device id '+' must be 1..64"),
        (["--devices", ","], "no devices to provision: give --devices ID,ID or --count N"),
        (["--count", "0"], "--count must be at least 1, got 0"),
        (["--count", "1", "--ip", "999.1.1.1"], "--ip '999.1.1.1' is not an IPv4 or IPv6 address"),
        (["--count", "1", "--port", "70000"], "--port: port 70000 is not in 1..65535"),
        (["--count", "1", "--days", "0"], "--days must be at least 1, got 0"),
        (["--count", "1", "--gateway-id", "gw#"], "gateway id 'gw#' must be 1..64"),
    ],
)
def test_refusals_leave_nothing_behind(root: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                       message: str) -> None:
    out = root / "out"
    rc = _provision(out, *args)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_federation_is_required(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--out", str(root), "--count", "1"]) == 2
    assert "--federation is required when provisioning" in capsys.readouterr().err


def test_devices_count_and_revoke_exclude_each_other(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["provision", "--out", str(root), "--federation", "f", "--devices", "a", "--count", "2"])
    assert exit_info.value.code == 2
    assert "argument --count: not allowed with argument --devices" in capsys.readouterr().err


@pytest.mark.skipif(broker_group() is None, reason="only root's broker drops to the mosquitto user")
def test_warns_when_the_broker_user_cannot_reach_its_files(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    closed = root / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    assert _provision(closed / "out", "--count", "1") == 0
    assert f"warning: the mosquitto user cannot enter {closed}" in capsys.readouterr().out

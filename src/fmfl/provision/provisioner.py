"""Create a federation's credentials: CA, broker certificate and config, gateway and device identities.

Everything is built in a staging folder inside the output folder and moved into place at the end, so a
failure half-way leaves no half-provisioned federation behind; an existing CA is never replaced unless
``force`` is given (every device certificate it signed would stop working).
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fmfl.errors import FmflError
from fmfl.protocol.ids import check_id
from fmfl.protocol.topics import Topics
from fmfl.provision import files, pki
from fmfl.provision.acl import acl_text
from fmfl.provision.broker_conf import BrokerFiles, ListenerSpec, conf_text
from fmfl.provision.layout import IdentityFiles, Layout
from fmfl.provision.passwords import hashed_lines, new_password
from fmfl.provision.registry import DeviceRecord, Registry


class ProvisionError(FmflError):
    """Provisioning refused: bad ids, or an existing CA that ``--force`` was not given to replace."""


@dataclass(frozen=True)
class ProvisionSpec:
    out: Path
    federation: str
    device_ids: tuple[str, ...]
    gateway_id: str = "aggregator"
    prefix: str = "fmfl"
    hostnames: tuple[str, ...] = ("localhost",)
    ips: tuple[str, ...] = ("127.0.0.1",)
    listener: ListenerSpec = field(default_factory=ListenerSpec)
    days: int = 365
    organization: str = "fmfl"
    force: bool = False
    #: hash with Debian's mosquitto_passwd when installed (False: always the built-in PBKDF2-SHA512)
    use_mosquitto_passwd: bool = True

    def __post_init__(self) -> None:
        check_id(self.federation, "federation")
        check_id(self.prefix, "topic prefix")
        check_id(self.gateway_id, "gateway id")
        if not self.device_ids:
            raise ProvisionError("no devices to provision: give --devices ID,ID or --count N")
        for device_id in self.device_ids:
            check_id(device_id, "device id")
        duplicates = sorted({d for d in self.device_ids if self.device_ids.count(d) > 1})
        if duplicates:
            raise ProvisionError(f"device id(s) given twice: {', '.join(duplicates)}")
        if self.gateway_id in self.device_ids:
            raise ProvisionError(f"the gateway id {self.gateway_id!r} is also listed as a device")
        if not self.hostnames and not self.ips:
            raise ProvisionError("the broker certificate needs at least one --hostname or --ip")
        for ip in self.ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError as exc:
                raise ProvisionError(f"--ip {ip!r} is not an IPv4 or IPv6 address") from exc
        if self.days < 1:
            raise ProvisionError(f"--days must be at least 1, got {self.days}")


def device_ids_for_count(count: int) -> tuple[str, ...]:
    if count < 1:
        raise ProvisionError(f"--count must be at least 1, got {count}")
    return tuple(f"dev-{i}" for i in range(1, count + 1))


def _write_identity(target: IdentityFiles, ca: pki.Issued, issued: pki.Issued, password: str) -> None:
    files.make_private_dir(target.root)
    files.write_private(target.password, (password + "\n").encode())
    files.write_private(target.keyfile, issued.key_pem)
    files.write_public(target.certfile, issued.cert_pem)
    files.write_public(target.cafile, ca.cert_pem)


def _write_web_fragment(target: IdentityFiles, device_id: str, password: str, key: Ed25519PrivateKey) -> None:
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    query = urllib.parse.urlencode({"client": device_id, "password": password,
                                    "key": base64.b64encode(der).decode()})
    files.write_private(target.web_fragment, f"#{query}\n".encode())


def _write_signing_key(target: IdentityFiles, device_id: str, password: str) -> str:
    """A fresh Ed25519 key (same PEM forms as ``fmfl keygen``) and the web device's link fragment; returns the
    raw public key, base64."""
    key = Ed25519PrivateKey.generate()
    _write_web_fragment(target, device_id, password, key)
    files.write_private(target.signing_key, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = key.public_key()
    files.write_public(target.signing_public_key, public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def write_broker_state(broker: BrokerFiles, registry: Registry, ca: pki.Issued, passwd_text: str) -> None:
    """The files derived from the registry (ACL, CRL) and the given password file."""
    topics = Topics(registry.federation, registry.prefix)
    files.write_broker_private(broker.password_file, passwd_text.encode())
    acl = acl_text(topics, registry.gateway_id, [d.device_id for d in registry.active])
    files.write_public(broker.acl_file, acl.encode())
    files.write_public(broker.crlfile, pki.make_crl(ca, [d.cert_serial for d in registry.revoked]))


def provision(spec: ProvisionSpec) -> Registry:
    """Create everything in ``spec.out``; returns the registry written to ``devices.json``."""
    final = Layout(spec.out)
    existing = [p for p in (final.registry, final.ca_key) if p.exists()]
    if existing and not spec.force:
        raise ProvisionError(
            f"{spec.out} already holds a provisioned federation ({existing[0]}); refusing to replace its CA. "
            "Use --revoke ID to revoke a device, or --force to start over (every device must then be "
            "provisioned again)"
        )
    if not spec.out.exists():
        spec.out.mkdir(parents=True)
        spec.out.chmod(0o755)  # the broker user must be able to enter it to reach broker/
    staging = Path(tempfile.mkdtemp(dir=spec.out, prefix=".fmfl-provision-"))
    try:
        _build(spec, Layout(staging), final)
        for path in final.top_level:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            (staging / path.name).rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Registry.from_json(final.registry.read_text())


def _build(spec: ProvisionSpec, stage: Layout, final: Layout) -> None:
    ca = pki.make_ca(spec.organization)
    files.make_private_dir(stage.ca_dir)
    files.write_private(stage.ca_key, ca.key_pem)
    files.write_public(stage.ca_cert, ca.cert_pem)

    passwords = {spec.gateway_id: new_password()}
    gateway = pki.make_client_cert(ca, spec.gateway_id, spec.days)
    files.make_private_dir(stage.gateway_dir)
    _write_identity(stage.gateway(spec.gateway_id), ca, gateway, passwords[spec.gateway_id])

    files.make_private_dir(stage.devices_dir)
    records = []
    for device_id in spec.device_ids:
        passwords[device_id] = new_password()
        cert = pki.make_client_cert(ca, device_id, spec.days)
        target = stage.device(device_id)
        _write_identity(target, ca, cert, passwords[device_id])
        records.append(DeviceRecord(device_id, _write_signing_key(target, device_id, passwords[device_id]),
                                    cert.cert.serial_number))
    registry = Registry(spec.federation, spec.prefix, spec.gateway_id, gateway.cert.serial_number,
                        spec.listener.client_certs, tuple(records))

    broker = stage.broker
    files.make_broker_dir(broker.root)
    server = pki.make_server_cert(ca, spec.hostnames, spec.ips, spec.days)
    files.write_public(broker.cafile, ca.cert_pem)
    files.write_public(broker.certfile, server.cert_pem)
    files.write_broker_private(broker.keyfile, server.key_pem)
    lines = hashed_lines(passwords, use_mosquitto_passwd=spec.use_mosquitto_passwd)
    write_broker_state(broker, registry, ca, "".join(f"{line}\n" for line in lines))
    # The config names the files where they will be after the move, not in the staging folder.
    files.write_public(broker.conf, conf_text(final.broker, spec.listener).encode())
    files.write_public(stage.registry, registry.to_json().encode())

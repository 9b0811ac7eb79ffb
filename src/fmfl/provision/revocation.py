"""``fmfl provision --revoke ID``: take a device out of the federation.

The registry marks it revoked; the broker's password file loses its line, the ACL loses its block (so it may
neither publish nor subscribe, even with a password or certificate it kept) and the CRL gains its
certificate serial (so client-certificate brokers refuse its TLS handshake). Mosquitto re-reads the password
and ACL files on SIGHUP; it reads the CRL only when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmfl.provision import files, pki
from fmfl.provision.layout import Layout
from fmfl.provision.passwords import without_user
from fmfl.provision.provisioner import ProvisionError, write_broker_state
from fmfl.provision.registry import DeviceStatus, Registry, RegistryError


@dataclass(frozen=True)
class Revocation:
    registry: Registry
    device_id: str
    #: False when the device was already revoked (the broker files were written again all the same)
    newly_revoked: bool


def load_registry(out: Path) -> Registry:
    layout = Layout(out)
    if not layout.registry.is_file():
        raise ProvisionError(f"{out} is not a provisioned federation ({layout.registry.name} is missing)")
    try:
        return Registry.from_json(layout.registry.read_text())
    except RegistryError as exc:
        raise ProvisionError(f"{layout.registry}: {exc}") from exc


def revoke(out: Path, device_id: str) -> Revocation:
    layout = Layout(out)
    registry = load_registry(out)
    if device_id == registry.gateway_id:
        raise ProvisionError(f"{device_id!r} is the gateway; provision the federation again (--force) to replace it")
    try:
        before = registry.get(device_id)
    except RegistryError as exc:
        raise ProvisionError(str(exc)) from exc
    try:
        ca = pki.load_ca(layout.ca_key.read_bytes(), layout.ca_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"cannot load the CA from {layout.ca_dir} to sign the CRL: {exc}") from exc
    revoked = registry.revoke(device_id)
    # The registry first: the broker files are derived from it, so a rerun after a crash completes them.
    files.write_public(layout.registry, revoked.to_json().encode())
    passwd = layout.broker.password_file
    remaining = without_user(passwd.read_text() if passwd.exists() else "", device_id)
    write_broker_state(layout.broker, revoked, ca, remaining)
    return Revocation(revoked, device_id, before.status is DeviceStatus.ACTIVE)

"""``devices.json``: the federation's identities, their Ed25519 update-signing keys and revocation status.

The gateway reads this registry to know which devices exist and which public key each signs its updates
with (see docs/security.md, "Signed updates"); ``fmfl provision --revoke`` flips a device to revoked and
derives the broker's password file, ACL and CRL from it again.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field, replace
from typing import Any

from fmfl.compat import StrEnum
from fmfl.errors import FmflError
from fmfl.protocol.ids import check_id

FORMAT = "fmfl-devices/1"


class RegistryError(FmflError):
    """devices.json is missing, malformed, or does not know the device asked for."""


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True)
class DeviceRecord:
    """One device: its Ed25519 public key (raw 32 bytes, base64) and the serial of its client certificate."""

    device_id: str
    public_key: str
    cert_serial: int
    status: DeviceStatus = DeviceStatus.ACTIVE
    revoked_at: str | None = None

    def __post_init__(self) -> None:
        check_id(self.device_id, "device id")
        if len(base64.b64decode(self.public_key, validate=True)) != 32:
            raise RegistryError(f"device {self.device_id}: public key is not a raw 32-byte Ed25519 key")

    @property
    def public_key_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key_type": "ed25519", "public_key": self.public_key,
                               "cert_serial": f"{self.cert_serial:x}", "status": self.status.value}
        if self.revoked_at is not None:
            out["revoked_at"] = self.revoked_at
        return out

    @classmethod
    def from_json(cls, device_id: str, raw: dict[str, Any]) -> DeviceRecord:
        if raw.get("key_type") != "ed25519":
            raise RegistryError(f"device {device_id}: key_type must be 'ed25519'")
        return cls(device_id, str(raw["public_key"]), int(str(raw["cert_serial"]), 16),
                   DeviceStatus(raw["status"]), raw.get("revoked_at"))


@dataclass(frozen=True)
class Registry:
    federation: str
    prefix: str
    gateway_id: str
    gateway_cert_serial: int
    client_certs: bool
    devices: tuple[DeviceRecord, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_id(self.federation, "federation")
        check_id(self.prefix, "topic prefix")
        check_id(self.gateway_id, "gateway id")
        ids = [d.device_id for d in self.devices]
        if len(set(ids)) != len(ids) or self.gateway_id in ids:
            raise RegistryError("device ids must be unique and differ from the gateway id")

    def get(self, device_id: str) -> DeviceRecord:
        for record in self.devices:
            if record.device_id == device_id:
                return record
        known = ", ".join(d.device_id for d in self.devices) or "none"
        raise RegistryError(f"no device {device_id!r} in this federation (devices: {known})")

    @property
    def active(self) -> tuple[DeviceRecord, ...]:
        return tuple(d for d in self.devices if d.status is DeviceStatus.ACTIVE)

    @property
    def revoked(self) -> tuple[DeviceRecord, ...]:
        return tuple(d for d in self.devices if d.status is DeviceStatus.REVOKED)

    def revoke(self, device_id: str, when: dt.datetime | None = None) -> Registry:
        """This registry with ``device_id`` revoked (an already revoked device keeps its first date)."""
        record = self.get(device_id)
        if record.status is DeviceStatus.REVOKED:
            return self
        stamp = (when or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
        revoked = replace(record, status=DeviceStatus.REVOKED, revoked_at=stamp)
        return replace(self, devices=tuple(revoked if d.device_id == device_id else d for d in self.devices))

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "federation": self.federation,
            "prefix": self.prefix,
            "gateway": {"id": self.gateway_id, "cert_serial": f"{self.gateway_cert_serial:x}"},
            "client_certs": self.client_certs,
            "devices": {d.device_id: d.to_json() for d in self.devices},
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Registry:
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT:
                raise RegistryError(f"not an fmfl device registry (format {doc.get('format')!r}, want {FORMAT!r})")
            devices = tuple(DeviceRecord.from_json(k, v) for k, v in doc["devices"].items())
            return cls(doc["federation"], doc["prefix"], doc["gateway"]["id"], int(doc["gateway"]["cert_serial"], 16),
                       bool(doc["client_certs"]), devices)
        except RegistryError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(f"devices.json is malformed: {exc!r}") from exc

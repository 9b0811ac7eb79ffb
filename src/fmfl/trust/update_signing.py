"""Ed25519 signatures on client updates (RFC 8032, via ``cryptography``), and the gateway's check of them.

The device signs ``ClientUpdate.signing_input()`` (a domain prefix, then canonical JSON of every field and
the payload's SHA-256; docs/protocol.md, "Signed updates") with the key ``fmfl provision`` wrote to
``devices/ID/signing.key``. The gateway holds only ``devices.json`` (the public keys and who is revoked) and
answers, per update, whether to refuse it and why:

==================  ===============================================================================
``unknown_device``  the sender has no entry in devices.json
``revoked_device``  ``fmfl provision --revoke`` took the sender out
``unsigned``        the update carries no nonce or no signature
``bad_signature``   the signature does not verify under the sender's key: forged (another key),
                    or any signed field, metric or payload byte changed after signing
==================  ===============================================================================

Replays are the ingest's business (it owns the logs that remember nonces and update ids); see
``fmfl.aggregator.core.ingest``. This is the only module importing ``cryptography`` for updates, and it is
imported only where signing is configured.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fmfl.bundle.signing import load_private_key
from fmfl.errors import FmflError
from fmfl.protocol import AckReason, ClientUpdate, new_nonce
from fmfl.provision.registry import DeviceStatus, Registry, RegistryError

log = logging.getLogger(__name__)

UNKNOWN_DEVICE = AckReason.UNKNOWN_DEVICE
REVOKED_DEVICE = AckReason.REVOKED_DEVICE
UNSIGNED = AckReason.UNSIGNED
BAD_SIGNATURE = AckReason.BAD_SIGNATURE
REGISTRY_UNREADABLE = AckReason.REGISTRY_UNREADABLE


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The device's Ed25519 private key (PKCS#8 PEM, as ``fmfl provision`` writes ``devices/ID/signing.key``)."""
    return load_private_key(path, role="update signing key", hint="use devices/ID/signing.key from fmfl provision")


def sign_update(update: ClientUpdate, key: Ed25519PrivateKey) -> ClientUpdate:
    """``update`` with a nonce (a fresh one unless it already has one) and its Ed25519 signature."""
    nonced = update if update.nonce is not None else replace(update, nonce=new_nonce(), signature=None)
    return replace(nonced, signature=key.sign(nonced.signing_input()))


class UpdateVerifier:
    """Checks updates against ``devices.json``, re-reading it whenever the file changes on disk.

    Re-reading on change makes ``fmfl provision --revoke`` effective for the next update without a
    gateway restart (``revoke`` replaces the file atomically, so a half-written file is never read).
    A file that becomes unreadable or malformed fails closed: every update is refused
    (``registry_unreadable``) until it is fixed, rather than trusting a registry that may predate a
    revocation. ``federation``: refuse at start-up a registry provisioned for another federation.
    """

    def __init__(self, path: str | os.PathLike[str], *, federation: str | None = None) -> None:
        self.path = Path(path)
        self.federation = federation
        self._lock = threading.Lock()  # the MQTT adapter and the engine may call from different threads
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, Ed25519PublicKey | None] = {}  # None: revoked
        self._error: str | None = None
        self._reload()
        if self._error is not None:
            raise FmflError(f"--device-registry {self.path}: {self._error}")

    def check(self, update: ClientUpdate) -> AckReason | None:
        """The refusal reason for ``update``, or None if its sender signed it and is active."""
        with self._lock:
            self._reload_if_changed()
            if self._error is not None:
                return REGISTRY_UNREADABLE
            if update.client_id not in self._keys:
                return UNKNOWN_DEVICE
            key = self._keys[update.client_id]
        if key is None:
            return REVOKED_DEVICE
        if update.nonce is None or update.signature is None:
            return UNSIGNED
        try:
            key.verify(update.signature, update.signing_input())
        except InvalidSignature:
            return BAD_SIGNATURE
        return None

    __call__ = check

    def _reload_if_changed(self) -> None:
        try:
            st = self.path.stat()
        except OSError as exc:
            self._fail(f"cannot read it: {exc}")
            return
        # Inode too: an atomic replace within one mtime tick still shows up.
        if (st.st_mtime_ns, st.st_size, st.st_ino) != self._stamp:
            self._reload()

    def _reload(self) -> None:
        keys: dict[str, Ed25519PublicKey | None] = {}
        try:
            st = self.path.stat()
            registry = Registry.from_json(self.path.read_text(encoding="utf-8"))
            for record in registry.devices:
                active = record.status is DeviceStatus.ACTIVE
                keys[record.device_id] = Ed25519PublicKey.from_public_bytes(record.public_key_bytes) if active else None
        except (OSError, UnicodeDecodeError, RegistryError, ValueError) as exc:
            self._fail(str(exc))
            return
        if self.federation is not None and registry.federation != self.federation:
            self._fail(f"it is the registry of federation {registry.federation!r}, not of {self.federation!r}")
            return
        if self._stamp is not None:
            log.warning("device registry %s reloaded: %d active, %d revoked", self.path,
                        len(registry.active), len(registry.revoked))
        self._keys, self._error = keys, None
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def _fail(self, why: str) -> None:
        if self._error != why:
            log.error("device registry %s: %s; refusing every update until it is readable", self.path, why)
        self._error = why
        self._stamp = None  # try again on the next update

"""Trust in what devices send: Ed25519-signed client updates checked against the federation's registry.

``sign_update(update, key)`` on the device; ``UpdateVerifier(devices_json)`` on the gateway. The design and
threat model are in docs/security.md ("Signed updates").
"""

# Exports load on first use (PEP 562): `fmfl --help` and argument parsing must not import cryptography.
from importlib import import_module
from typing import Any

_EXPORTS: dict[str, str] = {
    "SigningKeyError": "fmfl.bundle.signing",
    "UpdateVerifier": "fmfl.trust.update_signing",
    "load_signing_key": "fmfl.trust.update_signing",
    "sign_update": "fmfl.trust.update_signing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

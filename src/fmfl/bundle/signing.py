"""Ed25519 keys and detached signatures over manifest.json (RFC 8032, via ``cryptography``)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fmfl.errors import FmflError


class SigningKeyError(FmflError):
    """A key file that is missing or not an Ed25519 key."""


def generate_keypair(path: Path) -> tuple[Path, Path]:
    """Write a private key to ``path`` (PKCS#8 PEM, mode 0600) and its public key to ``path.pub``."""
    if path.exists():
        raise FmflError(f"{path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    pub_path = path.with_name(path.name + ".pub")
    pub_path.write_bytes(public)
    return path, pub_path


def load_private_key(
    path: Path, *, role: str = "signing key", hint: str = "make one with `fmfl keygen`"
) -> Ed25519PrivateKey:
    """An Ed25519 private key from PKCS#8 PEM; ``role`` and ``hint`` name it in the error messages."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the {role} {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key ({hint})")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the trust key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key (use the .pub file from `fmfl keygen`)")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def is_valid(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True

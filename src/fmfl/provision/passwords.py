"""Mosquitto password files: ``username:$7$iterations$salt$hash`` lines (Mosquitto 2.0 ``mosquitto_passwd``).

``$7$`` is PBKDF2-HMAC-SHA512 (RFC 8018) with the salt and the 64-byte derived key in standard base64, as
Mosquitto's ``pw__digest``/``pw__verify`` read it; 101 iterations is Mosquitto's default. The work factor
matters little here: every password fmfl provisions is 256 random bits, which no dictionary covers.

Debian's ``mosquitto_passwd -U`` is used when it is installed (the broker's own code does the hashing);
the pure-Python hash is the fallback, and tests check that the real broker accepts both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from fmfl.errors import FmflError

ITERATIONS = 101
SALT_BYTES = 12
PASSWORD_BYTES = 32


class PasswordFileError(FmflError):
    """mosquitto_passwd failed, or a password file line is not ``user:$7$...``."""


def new_password() -> str:
    """256 random bits, URL-safe (no ``:`` and no whitespace, so it survives every config format).

    Never starting with ``-``: ``--password -x...`` reads as an option to argparse (and to most CLIs), which
    broke about one provisioned device in 64 (``token_urlsafe`` draws ``-`` as often as any of its 64 characters).
    """
    while True:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        if not password.startswith("-"):
            return password


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The ``$7$`` PBKDF2-SHA512 form Mosquitto 2 verifies."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Check ``password`` against a ``$7$`` hash (the oracle that compares our hashes with mosquitto_passwd's)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise PasswordFileError(f"not a Mosquitto $7$ hash: {hashed[:20]!r}...")
    iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations), digest)


def mosquitto_passwd_binary() -> str | None:
    return shutil.which("mosquitto_passwd") or next(
        (p for p in ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd") if os.access(p, os.X_OK)), None
    )


def hashed_lines(passwords: Mapping[str, str], *, use_mosquitto_passwd: bool = True) -> list[str]:
    """``user:$7$...`` for each user, hashed by ``mosquitto_passwd -U`` when available, else in Python."""
    for user in passwords:
        if ":" in user or not user.isprintable() or not user:
            raise PasswordFileError(f"user name {user!r} cannot go into a Mosquitto password file")
    binary = mosquitto_passwd_binary() if use_mosquitto_passwd else None
    if binary is None:
        return [f"{user}:{hash_password(pw)}" for user, pw in passwords.items()]
    # -U hashes a file of plain user:password lines in place; the plain file lives in a private temp dir.
    with tempfile.TemporaryDirectory(prefix="fmfl-passwd-") as tmp:
        plain = Path(tmp) / "passwd"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{user}:{pw}\n" for user, pw in passwords.items())
        done = subprocess.run([binary, "-U", str(plain)], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise PasswordFileError(f"{binary} -U failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
        lines = plain.read_text().splitlines()
    users = [line.split(":", 1)[0] for line in lines]
    if users != list(passwords) or not all(line.split(":", 1)[1].startswith("$7$") for line in lines):
        raise PasswordFileError(f"{binary} -U wrote an unexpected password file (users {users})")
    return lines


def without_user(text: str, user: str) -> str:
    """The password file ``text`` minus ``user``'s line (revocation; the other hashes stay as they are)."""
    kept = [line for line in text.splitlines() if line.split(":", 1)[0] != user]
    return "".join(f"{line}\n" for line in kept)

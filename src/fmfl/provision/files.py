"""Writing provisioned files with the right owners and modes, atomically.

Three kinds of file: private (keys, passwords: 0600, only the provisioning user), public (certificates,
configs: 0644) and broker-private (the server key and password file). Mosquitto started as root drops
privileges to the ``mosquitto`` user before it reads the password and ACL files (and again on SIGHUP), so
when we run as root those are 0640 ``root:mosquitto`` in a 0750 ``root:mosquitto`` folder; otherwise the
broker runs as whoever provisioned, and 0600 in a 0700 folder suffices.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from fmfl.durable import atomic_write

BROKER_USER = "mosquitto"


def broker_group() -> int | None:
    """The gid that must be able to read broker-private files, or None when ownership need not change."""
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam(BROKER_USER).gr_gid
    except KeyError:
        return None


def _write(path: Path, data: bytes, mode: int, gid: int | None = None) -> None:
    """Atomic and durable, so a broker reloading never reads half a file (``fmfl.durable``)."""
    atomic_write(path, data, mode=mode, gid=gid)


def write_private(path: Path, data: bytes) -> None:
    _write(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    _write(path, data, 0o644)


def write_broker_private(path: Path, data: bytes) -> None:
    gid = broker_group()
    _write(path, data, 0o640 if gid is not None else 0o600, gid)


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def make_broker_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    gid = broker_group()
    if gid is not None:
        os.chown(path, -1, gid)
    path.chmod(0o750 if gid is not None else 0o700)


def untraversable_by_broker(path: Path) -> Path | None:
    """The first folder on the way to ``path`` the ``mosquitto`` user may not enter (None: all fine).

    Only meaningful when we run as root: then the broker will read ``path`` as ``mosquitto``.
    """
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(BROKER_USER)
    except KeyError:
        return None
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if BROKER_USER in g.gr_mem}
    resolved = path.resolve()
    for folder in [*reversed(resolved.parents), resolved]:
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return folder
    return None

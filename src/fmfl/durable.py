"""Atomic, durable file replacement: the one way fmfl writes a file that must survive a crash or power cut.

A reader, or a restart after SIGKILL, sees the old file or the new one, never half of either: the bytes go to
a temporary file in the same folder, which is fsynced and renamed over the target; then the folder itself is
fsynced, because the rename lives in the directory and is otherwise lost on power failure (a device's privacy
ledger could then under-count its releases, a gateway lose a global version it had announced).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def fsync_dir(folder: Path) -> None:
    """Make the renames and creations inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(
    path: Path, *, mode: int | None = None, gid: int | None = None, durable: bool = True
) -> Iterator[BinaryIO]:
    """A binary stream whose bytes replace ``path`` atomically and durably when the block ends without an
    exception; an exception (raise one to abandon the write) leaves the old file as it was and no temporary file.
    ``mode``/``gid`` are set before any byte is written (a private key is never readable by others, not even
    for an instant). ``durable=False`` keeps the atomic rename but skips both fsyncs: for files rebuilt from
    their source when lost (a demo's data shards), where one fsync per small file would dominate the write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        if gid is not None:
            os.fchown(fd, -1, gid)
        with os.fdopen(fd, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None, gid: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably (see ``atomic_writer``)."""
    with atomic_writer(path, mode=mode, gid=gid) as f:
        f.write(data)

"""A content hash of a data path: the data half of the feature cache's key (the bundle id is the other)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.jsonl import iter_records

_CHUNK = 1 << 20
_VERSION = b"fmfl-data-fingerprint-v1\0"


def data_fingerprint(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) over the relative names, sizes and contents of the files the readers would read.

    A folder covers every visible file below it (names starting with ``.`` are skipped, as the readers skip
    them); a ``.jsonl`` file also covers the image files its records name, so that replacing an image of an
    image-caption set changes the fingerprint. Contents are streamed in 1 MiB chunks.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    digest = hashlib.sha256(_VERSION)
    for name, file in _files(root):
        encoded = name.encode("utf-8", "surrogateescape")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        try:
            digest.update(file.stat().st_size.to_bytes(8, "big"))
            with file.open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    if root.is_file():
        yield root.name, root
        if root.suffix.lower() == ".jsonl":
            yield from _referenced_images(root)
        return
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder) / f for f in files if not f.startswith(".")]
    for file in sorted(found, key=lambda p: p.relative_to(root).as_posix()):
        yield file.relative_to(root).as_posix(), file


def _referenced_images(jsonl: Path) -> Iterator[tuple[str, Path]]:
    names = sorted({str(r["image"]) for _, r in iter_records(jsonl) if isinstance(r.get("image"), str)})
    for name in names:
        yield name, jsonl.parent / name

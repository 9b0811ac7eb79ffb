"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, arXiv:1708.07747): 70,000 28x28 grayscale clothing images.

Where the files are looked for, first match wins:

1. ``root`` when given (the folder holding the four IDX files);
2. ``$FMFL_DATA_DIR/fashion-mnist`` when the environment variable is set;
3. ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``);
4. ``$XDG_CACHE_HOME/fmfl/fashion-mnist`` (default ``~/.cache/fmfl/fashion-mnist``).

When none holds the files and ``download`` is true, the official files are downloaded into the first
writable choice among 1, 2 and 4, and checked against the SHA-256 of their decompressed content (not of the
``.gz``: Debian recompresses the files, so the archives differ while the data is the same).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from fmfl.datasets.errors import DatasetUnavailable
from fmfl.datasets.idx import IdxFormatError, read_idx
from fmfl.durable import atomic_writer

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Class names in label order, as in the data set's README."""

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    # The S3 website endpoint serves plain HTTP only; integrity comes from the checksums below.
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

# SHA-256 of each file's decompressed bytes.
_FILES: dict[str, tuple[str, str]] = {
    "train": (
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels": (
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test": (
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test-labels": (
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
_SIZES = {"train": 60_000, "test": 10_000}
_DOWNLOAD_TIMEOUT_S = 30.0

Split = Literal["train", "test"]


class FashionMnist(NamedTuple):
    """One split: ``images`` uint8 [N, 28, 28] and ``labels`` int64 [N] in 0..9."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]


def load_fashion_mnist(
    split: Split = "train",
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    mirrors: Sequence[str] = FASHION_MNIST_MIRRORS,
) -> FashionMnist:
    """Load one split of Fashion-MNIST as ``(images, labels)``.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DatasetUnavailable: the files are nowhere to be found and cannot be downloaded.
        IdxFormatError: a file is present but corrupt (bad magic number, truncated, wrong shape).
    """
    if split not in _SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = [_FILES[split][0], _FILES[f"{split}-labels"][0]]
    folder = _find_folder(names, root)
    if folder is None:
        if not download:
            raise DatasetUnavailable(_missing_message(root, tried=[]))
        folder = _download_folder(root)
        errors = _download(folder, [split, f"{split}-labels"], mirrors)
        if errors:
            raise DatasetUnavailable(_missing_message(root, tried=errors))
    images_path, labels_path = (folder / name for name in names)
    images_path = _existing(folder, names[0]) or images_path
    labels_path = _existing(folder, names[1]) or labels_path
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise IdxFormatError(f"{images_path}: images of shape {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise IdxFormatError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    return FashionMnist(images, labels.astype(np.int64))


def _existing(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _candidate_folders(root: str | os.PathLike[str] | None) -> list[Path]:
    if root is not None:
        # An explicit root is the only place looked at: silently reading other files would surprise.
        return [Path(root)]
    folders = []
    if env := os.environ.get("FMFL_DATA_DIR"):
        folders.append(Path(env) / "fashion-mnist")
    folders += [SYSTEM_DIR, _cache_dir()]
    return folders


def _find_folder(names: list[str], root: str | os.PathLike[str] | None) -> Path | None:
    for folder in _candidate_folders(root):
        if all(_existing(folder, name) is not None for name in names):
            return folder
    return None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fmfl" / "fashion-mnist"


def _download_folder(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root)
    if env := os.environ.get("FMFL_DATA_DIR"):
        return Path(env) / "fashion-mnist"
    return _cache_dir()


def _download(folder: Path, keys: list[str], mirrors: Sequence[str]) -> list[str]:
    """Fetch the missing files into ``folder``; returns one line per failed attempt, empty on success."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [f"cannot create {folder}: {exc}"]
    for key in keys:
        name, sha256 = _FILES[key]
        if _existing(folder, name) is not None:
            continue
        failures = []
        for mirror in mirrors:
            error = _fetch(mirror.rstrip("/") + f"/{name}.gz", folder / f"{name}.gz", sha256)
            if error is None:
                break
            failures.append(error)
        else:
            return failures or ["no download mirror given"]
    return []


def _fetch(url: str, target: Path, sha256: str) -> str | None:
    """Download ``url`` to ``target`` atomically, checking the decompressed SHA-256; returns an error line."""
    # Imported here: urllib.request pulls in http.client and email (~20 ms), a cost the edge client pays
    # on every start through fmfl.datasets.idx while never downloading anything.
    import http.client
    import urllib.request

    try:
        # The temporary file is entered first so that a failed connection still removes it.
        with atomic_writer(target) as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            digest = hashlib.sha256()
            # wbits=16+MAX_WBITS: the stream is gzip; hashing while downloading avoids a second pass.
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(inflate.decompress(chunk))
            digest.update(inflate.flush())
            if (got := digest.hexdigest()) != sha256:
                raise _ChecksumMismatch(f"{url}: checksum mismatch (got sha256 {got}, expected {sha256})")
        return None
    except _ChecksumMismatch as exc:  # raised inside the block: the old file stays, the download is dropped
        return str(exc)
    except (OSError, http.client.HTTPException, zlib.error, ValueError) as exc:  # URLError is an OSError
        return f"{url}: {exc}"


class _ChecksumMismatch(Exception):
    """Abandons a download whose content is not the one pinned."""


def _missing_message(root: str | os.PathLike[str] | None, tried: list[str]) -> str:
    where = ", ".join(str(folder) for folder in _candidate_folders(root))
    lines = [
        f"Fashion-MNIST not found (looked in {where}).",
        "Install it with `apt-get install dataset-fashion-mnist`, or put train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
        "(from https://github.com/zalandoresearch/fashion-mnist) in one of those folders "
        "(or in $FMFL_DATA_DIR/fashion-mnist).",
    ]
    if tried:
        lines.append("Download failed: " + "; ".join(tried))
    return " ".join(lines)

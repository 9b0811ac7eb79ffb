"""IDX folders: ``PREFIX-images-idx3-ubyte[.gz]`` with ``PREFIX-labels-idx1-ubyte[.gz]`` (MNIST's format).

A folder must hold exactly one such pair: with several (``train`` and ``t10k``) it is ambiguous which one is
the device's data, and silently merging a test split into training data is worse than an error. Naming the
images file itself picks its pair out of such a folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from fmfl.datasets.idx import IdxFormatError, read_idx
from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.samples import RawSamples

IMAGES_PATTERN = re.compile(r"^(?P<prefix>.+)-images[-.]idx3-ubyte(\.gz)?$")
_LABEL_SUFFIXES = (
    "-labels-idx1-ubyte.gz",
    "-labels-idx1-ubyte",
    "-labels.idx1-ubyte.gz",
    "-labels.idx1-ubyte",
)


def image_files(folder: Path) -> list[Path]:
    """The IDX image files directly in ``folder``."""
    return sorted(p for p in folder.iterdir() if IMAGES_PATTERN.match(p.name) and p.is_file())


def read_idx_folder(path: Path) -> RawSamples:
    """Read the folder's single IDX image/label pair, or the pair of the images file ``path`` names."""
    folder = path.parent if path.is_file() else path
    images_files = [path] if path.is_file() else image_files(path)
    if len(images_files) != 1:
        names = ", ".join(p.name for p in images_files) or "none"
        raise DataError(
            f"{path}: expected one *-images-idx3-ubyte[.gz] file, found {names}; "
            "put each split in its own folder"
        )
    images_path = images_files[0]
    match = IMAGES_PATTERN.match(images_path.name)
    if match is None:
        raise DataError(f"{images_path}: not an IDX images file name (*-images-idx3-ubyte[.gz])")
    candidates = [folder / (match["prefix"] + suffix) for suffix in _LABEL_SUFFIXES]
    labels_path = next((p for p in candidates if p.is_file()), None)
    if labels_path is None:
        raise DataError(f"{images_path}: no labels file beside it (expected {candidates[0].name})")
    try:
        images = read_idx(images_path, ndim=3)
        labels = read_idx(labels_path, ndim=1)
    except IdxFormatError as exc:
        raise DataError(str(exc)) from exc
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path.name} holds {len(labels)} labels"
        )
    if len(images) == 0:
        raise DataError(f"{images_path}: holds no images")
    return RawSamples(source=path, images=images, labels=labels, label_origins=str(labels_path))

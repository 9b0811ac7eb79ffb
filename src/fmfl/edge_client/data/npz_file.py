"""NumPy ``.npz`` archives of uint8 images (``images`` or ``x``) and integer labels (``labels`` or ``y``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.samples import RawSamples

IMAGE_KEYS = ("images", "x")
LABEL_KEYS = ("labels", "y")


def read_npz(path: Path) -> RawSamples:
    """Read images and labels; pickled object arrays are refused (``allow_pickle=False``)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: a single .npy array, not an .npz archive of named arrays")
        with loaded as archive:
            keys = set(archive.files)
            image_key = next((k for k in IMAGE_KEYS if k in keys), None)
            label_key = next((k for k in LABEL_KEYS if k in keys), None)
            if image_key is None or label_key is None:
                raise DataError(
                    f"{path}: arrays {sorted(keys)}; expected 'images' (or 'x') and 'labels' (or 'y')"
                )
            images = archive[image_key]
            labels = archive[label_key]
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from exc
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: '{label_key}' must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{path}: holds no samples")
    return RawSamples(source=path, images=images, labels=labels, label_origins=f"{path} ['{label_key}']")

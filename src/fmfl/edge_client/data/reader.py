"""``read_local_data``: find the format of a data path, read it, and preprocess it as the bundle says.

Detection, first match wins:

- a ``.npz`` file; a ``.csv`` file (texts); a ``.jsonl`` file whose first record has ``image`` (image-caption
  pairs) or ``text`` (texts); a ``*-images-idx3-ubyte[.gz]`` file (with its labels file beside it);
- a folder holding exactly one ``.npz``/``.csv``/``.jsonl`` file at its top level: that file (the layout
  :func:`~fmfl.edge_client.data.writers.write_caption_jsonl` writes, images in a sub-folder beside it);
- a folder holding ``*-images-idx3-ubyte[.gz]``: IDX files;
- a folder with sub-folders: an image folder, one sub-folder per class.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.edge_client.data import images as image_ops
from fmfl.edge_client.data import text as text_ops
from fmfl.edge_client.data.caption_jsonl import read_caption_jsonl
from fmfl.edge_client.data.dataset import Array, LocalDataset
from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.idx_folder import IMAGES_PATTERN, image_files, read_idx_folder
from fmfl.edge_client.data.image_folder import read_image_folder
from fmfl.edge_client.data.jsonl import first_record
from fmfl.edge_client.data.labels import resolve_labels
from fmfl.edge_client.data.npz_file import read_npz
from fmfl.edge_client.data.preprocessing import Preprocessing
from fmfl.edge_client.data.samples import RawSamples
from fmfl.edge_client.data.text_table import read_text_csv, read_text_jsonl

_DATA_SUFFIXES = (".npz", ".csv", ".jsonl")


class DataFormat(enum.Enum):
    """The local data formats the device reads."""

    IMAGE_FOLDER = "image folder"
    IDX = "IDX files"
    NPZ = "npz archive"
    TEXT_JSONL = "text JSONL"
    TEXT_CSV = "text CSV"
    CAPTION_JSONL = "image-caption JSONL"


_READERS: dict[DataFormat, Callable[[Path], RawSamples]] = {
    DataFormat.IMAGE_FOLDER: read_image_folder,
    DataFormat.IDX: read_idx_folder,
    DataFormat.NPZ: read_npz,
    DataFormat.TEXT_JSONL: read_text_jsonl,
    DataFormat.TEXT_CSV: read_text_csv,
    DataFormat.CAPTION_JSONL: read_caption_jsonl,
}


def detect_format(path: str | os.PathLike[str]) -> tuple[DataFormat, Path]:
    """The format of ``path`` and the file or folder to read (a folder may stand for its one data file)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return _file_format(path), path
    try:
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{path}: cannot list folder ({exc.strerror or exc})") from exc
    data_files = [p for p in entries if p.suffix.lower() in _DATA_SUFFIXES and p.is_file()]
    if len(data_files) == 1:
        return _file_format(data_files[0]), data_files[0]
    if len(data_files) > 1:
        names = ", ".join(p.name for p in data_files)
        raise DataError(f"{path}: holds several data files ({names}); give the one to read")
    if image_files(path):
        return DataFormat.IDX, path
    if any(p.is_dir() for p in entries):
        return DataFormat.IMAGE_FOLDER, path
    if not entries:
        raise DataError(f"{path}: empty folder")
    raise DataError(
        f"{path}: no data found; expected class sub-folders of images, *-images-idx3-ubyte[.gz] with "
        "*-labels-idx1-ubyte[.gz], or one .npz, .csv or .jsonl file"
    )


def _file_format(path: Path) -> DataFormat:
    if IMAGES_PATTERN.match(path.name):
        return DataFormat.IDX
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return DataFormat.NPZ
    if suffix == ".csv":
        return DataFormat.TEXT_CSV
    if suffix == ".jsonl":
        record = first_record(path)
        if record is None:
            raise DataError(f"{path}: holds no records")
        if "image" in record:
            return DataFormat.CAPTION_JSONL
        if "text" in record:
            return DataFormat.TEXT_JSONL
        raise DataError(
            f"{path}:1: record fields {sorted(record)}; expected 'text' and 'label', or 'image' and 'caption'"
        )
    raise DataError(f"{path}: unsupported file type '{suffix}'; expected .npz, .csv or .jsonl, or a folder")


def read_local_data(
    path: str | os.PathLike[str],
    preprocessing: Mapping[str, Any] | Preprocessing,
    labels: Sequence[str] | None = None,
) -> LocalDataset:
    """Read the device's data at ``path`` and preprocess it into the model's inputs.

    Args:
        path: a file or folder in one of the formats of :class:`DataFormat` (detected, see module docs).
        preprocessing: the bundle manifest's ``preprocessing`` section (``text.tokenizer_path`` resolved).
        labels: the model's label names from the manifest; None derives them from the data.

    Raises:
        DataError: missing path, empty folder, unreadable or corrupt file, missing fields or columns, a label
            outside ``labels``, or data the model takes no input for; the message names the file.
    """
    spec = (
        preprocessing
        if isinstance(preprocessing, Preprocessing)
        else Preprocessing.from_manifest(preprocessing)
    )
    data_format, target = detect_format(path)
    raw = _READERS[data_format](target)
    return build_dataset(raw, spec, labels, data_format)


def build_dataset(
    raw: RawSamples, spec: Preprocessing, labels: Sequence[str] | None, data_format: DataFormat
) -> LocalDataset:
    """Preprocess what a reader returned, after checking that the model takes the data's kinds of input.

    Labels are resolved before any image is decoded, so that a wrong label fails in milliseconds.
    """
    if raw.images is not None and spec.image is None:
        raise DataError(
            f"{raw.source}: holds images ({data_format.value}) but the model takes no image input"
        )
    if raw.texts is not None and spec.text is None:
        raise DataError(f"{raw.source}: holds texts ({data_format.value}) but the model takes no text input")
    indices, names = (
        (None, tuple(labels or ()))
        if raw.labels is None
        else resolve_labels(raw.labels, raw.label_origins, labels)
    )
    # Loaded first too: a missing tokenizer should not wait for every image to be decoded.
    tokenizer = (
        text_ops.load_tokenizer(spec.text) if raw.texts is not None and spec.text is not None else None
    )
    inputs: dict[str, Array] = {}
    if raw.images is not None and spec.image is not None:
        if isinstance(raw.images, np.ndarray):
            pixels = image_ops.fit_image_array(raw.images, spec.image, str(raw.source))
        else:
            pixels = image_ops.load_image_files(raw.images, spec.image)
        inputs[spec.image.input_name] = image_ops.normalize(pixels, spec.image)
    if raw.texts is not None and spec.text is not None:
        inputs.update(text_ops.tokenize(raw.texts, spec.text, tokenizer))
    return LocalDataset(inputs=inputs, labels=indices, label_names=names, source=str(raw.source))

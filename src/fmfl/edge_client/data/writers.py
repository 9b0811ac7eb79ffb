"""Writers for each client's shard in the formats the readers take (the demo materialises its clients' data).

Every writer replaces its files through ``fmfl.durable.atomic_writer``, so a reader (or a restart after a crash)
never sees half a file. Not fsynced (``durable=False``): a shard is rebuilt from its source data if a power
cut loses it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from fmfl.durable import atomic_writer
from fmfl.edge_client.data.labels import RawLabel


def _check_images(images: npt.NDArray[np.generic]) -> None:
    if (
        images.dtype != np.uint8
        or images.ndim not in (3, 4)
        or (images.ndim == 4 and images.shape[3] not in (1, 3))
    ):
        raise ValueError(
            f"images must be uint8 [N, H, W] or [N, H, W, 1|3], got {images.dtype} {images.shape}"
        )


def _check_length(name: str, values: Sequence[object] | npt.NDArray[np.generic], n: int) -> None:
    if len(values) != n:
        raise ValueError(f"{len(values)} {name} for {n} samples")


def _label_value(label: RawLabel | np.integer) -> RawLabel:
    if isinstance(label, np.integer):
        return int(label)
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise ValueError(f"a label must be a class name or an integer index, got {label!r}")
    return label


def write_npz(path: str | os.PathLike[str], images: npt.ArrayLike, labels: npt.ArrayLike) -> Path:
    """Write ``images`` (uint8 [N, H, W(, C)]) and ``labels`` (integers [N]) as an ``.npz`` archive."""
    image_array, label_array = np.asarray(images), np.asarray(labels)
    _check_images(image_array)
    if label_array.ndim != 1 or not np.issubdtype(label_array.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {label_array.dtype} {label_array.shape}")
    _check_length("labels", label_array, len(image_array))
    target = Path(path)
    with atomic_writer(target, durable=False) as stream:
        np.savez(stream, images=image_array, labels=label_array.astype(np.int64))
    return target


def write_text_jsonl(
    path: str | os.PathLike[str], texts: Sequence[str], labels: Sequence[RawLabel] | npt.NDArray[np.integer]
) -> Path:
    """Write ``{"text": ..., "label": ...}`` lines; labels are class names or integer indices."""
    _check_length("labels", labels, len(texts))
    target = Path(path)
    with atomic_writer(target, durable=False) as stream:
        for text, label in zip(texts, labels, strict=True):
            record = {"text": text, "label": _label_value(label)}
            stream.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    return target


def write_caption_jsonl(
    directory: str | os.PathLike[str],
    images: npt.ArrayLike,
    captions: Sequence[str],
    labels: Sequence[RawLabel] | npt.NDArray[np.integer] | None = None,
) -> Path:
    """Write ``images/NNNNNN.png`` and ``captions.jsonl`` into ``directory``; returns ``directory``.

    ``read_local_data(directory, ...)`` reads it back (the folder's one ``.jsonl`` file).
    """
    image_array = np.asarray(images)
    _check_images(image_array)
    _check_length("captions", captions, len(image_array))
    if labels is not None:
        _check_length("labels", labels, len(image_array))
    folder = Path(directory)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(len(image_array))))
    lines = []
    for i, image in enumerate(image_array):
        name = f"images/{i:0{width}d}.png"
        pixels = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
        with atomic_writer(folder / name, durable=False) as stream:
            Image.fromarray(pixels).save(stream, format="PNG")
        record: dict[str, RawLabel] = {"image": name, "caption": captions[i]}
        if labels is not None:
            record["label"] = _label_value(labels[i])
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    with atomic_writer(folder / "captions.jsonl", durable=False) as stream:
        stream.write("".join(lines).encode("utf-8"))
    return folder


def write_image_folder(
    directory: str | os.PathLike[str],
    images: npt.ArrayLike,
    labels: npt.ArrayLike,
    label_names: Sequence[str],
) -> Path:
    """Write ``directory/<class name>/NNNNNN.png`` per image; returns ``directory``."""
    image_array, label_array = np.asarray(images), np.asarray(labels)
    _check_images(image_array)
    _check_length("labels", label_array, len(image_array))
    if label_array.size and (label_array.min() < 0 or label_array.max() >= len(label_names)):
        raise ValueError(f"labels must index label_names (0..{len(label_names) - 1})")
    folder = Path(directory)
    width = max(6, len(str(len(image_array))))
    for i, (image, label) in enumerate(zip(image_array, label_array, strict=True)):
        name = label_names[int(label)]
        if not name or "/" in name or name.startswith(".") or "\0" in name:
            raise ValueError(f"class name {name!r} cannot be a folder name")
        pixels = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
        with atomic_writer(folder / name / f"{i:0{width}d}.png", durable=False) as stream:
            Image.fromarray(pixels).save(stream, format="PNG")
    return folder

"""Image-caption pairs for a dual encoder: JSON Lines of ``{"image": path, "caption": str, "label": ...}``.

Image paths are relative to the JSONL file's folder (absolute paths are taken as they are). Labels, used only
to evaluate zero-shot classification, must be on every record or on none.
"""

from __future__ import annotations

from pathlib import Path

from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.jsonl import iter_records, require
from fmfl.edge_client.data.labels import RawLabel
from fmfl.edge_client.data.samples import RawSamples


def read_caption_jsonl(path: Path) -> RawSamples:
    """Read the records and check that every image file exists (decoding comes later, vectorised)."""
    images: list[Path] = []
    captions: list[str] = []
    labels: list[RawLabel] = []
    origins: list[str] = []
    unlabelled_at: str | None = None
    for number, record in iter_records(path):
        where = f"{path}:{number}"
        image = path.parent / require(record, "image", (str,), where)
        if not image.is_file():
            raise DataError(f"{where}: image file {image} not found")
        images.append(image)
        captions.append(require(record, "caption", (str,), where))
        if "label" in record:
            labels.append(require(record, "label", (str, int), where))
            origins.append(where)
        elif unlabelled_at is None:
            unlabelled_at = where
    if not images:
        raise DataError(f"{path}: holds no records")
    if labels and unlabelled_at is not None:
        raise DataError(
            f"{unlabelled_at}: record has no 'label' while others have one; label all records or none"
        )
    return RawSamples(
        source=path, images=images, texts=captions, labels=labels or None, label_origins=origins
    )

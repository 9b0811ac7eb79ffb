"""Image folders: one sub-folder per class holding its images (the torchvision ``ImageFolder`` layout).

Class folders are read in name order, images within them recursively in path order. Hidden files and folders
(names starting with ``.``) and files that are not images by their suffix are skipped; an empty class folder
is allowed (a device may hold no sample of a class), an empty data folder is not. A class whose name cannot be
a folder name (Fashion-MNIST's ``T-shirt/top``) may be given by its index in the model's labels (``0/``).
"""

from __future__ import annotations

from pathlib import Path

from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.images import IMAGE_SUFFIXES
from fmfl.edge_client.data.labels import RawLabel
from fmfl.edge_client.data.samples import RawSamples


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def read_image_folder(path: Path) -> RawSamples:
    """List the images of a class-per-folder tree; labels are the class folder names."""
    files: list[Path] = []
    labels: list[RawLabel] = []
    origins: list[str] = []
    for class_dir in sorted(p for p in path.iterdir() if p.is_dir() and _visible(p, path)):
        images = sorted(
            p
            for p in class_dir.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and _visible(p, path)
        )
        files += images
        labels += [class_dir.name] * len(images)
        origins += [f"{class_dir}/"] * len(images)
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(
            f"{path}: no images ({suffixes}) in class sub-folders; expected {path}/<class>/<image>"
        )
    return RawSamples(source=path, images=files, labels=labels, label_origins=origins)

"""``fmfl demo --data PATH``: the same federated pipeline on a user's own labelled data set.

PATH holds a training set and a test set, each a file or folder in one of the edge client's formats
(image class folders, IDX, ``.npz``, text JSONL or CSV), named ``train*`` and ``test*``. Labels come
from the files; the class list is the sorted set of training labels.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.bundle import Manifest
from fmfl.demo.tasks import TASKS, DemoData, DemoTask
from fmfl.edge_client.data import LocalDataset, read_local_data, write_npz, write_text_jsonl
from fmfl.edge_client.data.reader import _READERS, detect_format
from fmfl.edge_client.data.samples import RawSamples
from fmfl.edge_client.device import resolved_preprocessing
from fmfl.errors import FmflError


@dataclass(frozen=True)
class UserData:
    kind: str  # "image" or "text"
    train: RawSamples
    test_path: Path
    train_y: np.ndarray
    label_names: tuple[str, ...]


def _one(path: Path, stem: str) -> Path:
    found = sorted(p for p in path.iterdir() if p.name.startswith(stem) and not p.name.startswith("."))
    if len(found) != 1:
        raise FmflError(f"--data {path} must hold exactly one '{stem}*' file or folder (found "
                        f"{[p.name for p in found] or 'none'}); e.g. train.jsonl and test.jsonl, or train/ and test/")
    return found[0]


def load_user_data(path: Path) -> UserData:
    if not path.is_dir():
        raise FmflError(f"--data {path} is not a folder holding train* and test* data")
    train_path, test_path = _one(path, "train"), _one(path, "test")
    data_format, target = detect_format(train_path)
    raw = _READERS[data_format](target)
    if raw.labels is None:
        raise FmflError(f"{train_path}: the demo needs labelled data (captions without labels are not supported)")
    if raw.images is not None and raw.texts is not None:
        raise FmflError(f"{train_path}: image-caption data is not supported by --data yet; use labelled images or text")
    names = sorted({str(label) for label in raw.labels})
    if len(names) < 2:
        raise FmflError(f"{train_path}: found {len(names)} label(s); classification needs at least 2")
    index = {name: i for i, name in enumerate(names)}
    train_y = np.array([index[str(label)] for label in raw.labels], dtype=np.int64)
    return UserData("image" if raw.images is not None else "text", raw, test_path, train_y, tuple(names))


def write_user_shard(folder: Path, data: UserData, index: np.ndarray) -> Path:
    raw = data.train
    labels = [data.label_names[int(data.train_y[i])] for i in index]
    if raw.texts is not None:
        return write_text_jsonl(folder / "data.jsonl", [raw.texts[i] for i in index], labels)
    if isinstance(raw.images, np.ndarray):
        return write_npz(folder / "data.npz", raw.images[index], data.train_y[index])
    assert raw.images is not None
    root = folder / "images"
    for i in index:
        src = Path(raw.images[int(i)])
        dst = root / str(data.train_y[i]) / f"{i:07d}{src.suffix}"  # folders named by class index
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return root


def user_task(cfg: Any, base: DemoTask) -> tuple[DemoTask, DemoData]:
    """The demo task for the user's data: the model and spec from --model/--train, defaults by data kind."""
    user = load_user_data(cfg.data)
    if user.kind == "image":
        model, spec, size = cfg.model or "effnet-lite0", cfg.train or "head", cfg.image_size or 64
    else:
        model, spec, size = cfg.model or "minilm", cfg.train or base.train_spec, None
        if base.name != "text":
            base = TASKS["text"]
    task = replace(base, name="data", model=model, export_task="classify", train_spec=spec, image_size=size,
                   write_shard=lambda folder, _data, index, _seed: write_user_shard(folder, user, index))
    data = DemoData(train_x=[], train_y=user.train_y, test_x=[], test_y=np.zeros(0, dtype=np.int64),
                    label_names=user.label_names)
    return task, data


def read_user_test(path: Path, bundle: Path, manifest: Manifest) -> LocalDataset:
    test_path = _one(path, "test")
    return read_local_data(test_path, resolved_preprocessing(bundle, manifest), manifest.labels)

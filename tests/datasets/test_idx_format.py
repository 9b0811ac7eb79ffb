"""IDX read/write: round trips and every rejection of a corrupt file."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fmfl.datasets.idx import IdxFormatError, read_idx, write_idx


@pytest.mark.parametrize("name", ["x-images-idx3-ubyte", "x-images-idx3-ubyte.gz"])
def test_round_trip_plain_and_gzipped(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)

    read = read_idx(write_idx(tmp_path / name, images), ndim=3)

    np.testing.assert_array_equal(read, images)


def test_reads_gzip_by_content_not_name(tmp_path: Path) -> None:
    labels = np.arange(7, dtype=np.uint8)
    path = write_idx(tmp_path / "labels.gz", labels)
    renamed = path.rename(tmp_path / "labels-idx1-ubyte")

    np.testing.assert_array_equal(read_idx(renamed), labels)


def test_real_fashion_mnist_labels_header() -> None:
    labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", ndim=1)

    assert labels.shape == (10_000,)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x08\x03\x00\x00" + b"\x00" * 12, "bad IDX magic number"),
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4, "bad IDX magic number"),  # float32
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x01" * 9, "truncated or corrupt"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x01" * 3, "truncated or corrupt"),
    ],
)
def test_rejects_corrupt_content(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(payload)

    with pytest.raises(IdxFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_rejects_wrong_number_of_dimensions(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.zeros(3, dtype=np.uint8))

    with pytest.raises(IdxFormatError, match="1 dimensions, expected 3"):
        read_idx(path, ndim=3)


def test_rejects_broken_gzip(tmp_path: Path) -> None:
    good = gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 1000) + bytes(1000))
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(good[: len(good) // 2])

    with pytest.raises(IdxFormatError, match="cannot read IDX file"):
        read_idx(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IdxFormatError, match="cannot read"):
        read_idx(tmp_path / "absent.gz")


def test_write_rejects_non_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsigned bytes"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.float32))
    assert not list(tmp_path.iterdir())

"""Fashion-MNIST loader on the real Debian files; download and failure paths against a loopback server."""

import functools
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fmfl.datasets import FASHION_MNIST_CLASSES, DatasetUnavailable, IdxFormatError, load_fashion_mnist
from fmfl.datasets.fashion_mnist import SYSTEM_DIR
from fmfl.datasets.idx import read_idx, write_idx

needs_debian_files = pytest.mark.debian_data(SYSTEM_DIR / "t10k-images-idx3-ubyte.gz", "dataset-fashion-mnist")
TEST_FILES = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def _isolated_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never read or fill the user's real cache from a test.
    monkeypatch.delenv("FMFL_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback: (folder, base URL)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@needs_debian_files
def test_test_split_is_the_real_data_set() -> None:
    images, labels = load_fashion_mnist("test")

    assert images.shape == (10_000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[9] == "Ankle boot"


@needs_debian_files
def test_train_split_has_60000_images() -> None:
    images, labels = load_fashion_mnist("train")

    assert images.shape == (60_000, 28, 28)
    assert labels.shape == (60_000,)
    assert labels[:5].tolist() == [9, 0, 0, 3, 0]  # the published first labels


@needs_debian_files
def test_root_and_env_dir_take_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = read_idx(SYSTEM_DIR / TEST_FILES[0])[:20]
    labels = read_idx(SYSTEM_DIR / TEST_FILES[1])[:20]
    for folder in (tmp_path / "root", tmp_path / "env" / "fashion-mnist"):
        write_idx(folder / "t10k-images-idx3-ubyte", images)  # uncompressed names are accepted too
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)

    from_root = load_fashion_mnist("test", root=tmp_path / "root")
    monkeypatch.setenv("FMFL_DATA_DIR", str(tmp_path / "env"))
    from_env = load_fashion_mnist("test")

    assert len(from_root.images) == len(from_env.images) == 20
    np.testing.assert_array_equal(from_env.labels, labels)


@needs_debian_files
def test_downloads_and_verifies_the_official_files(served_folder: tuple[Path, str], tmp_path: Path) -> None:
    mirror_dir, url = served_folder
    for name in TEST_FILES:
        shutil.copy(SYSTEM_DIR / name, mirror_dir / name)
    target = tmp_path / "downloaded"

    images, _ = load_fashion_mnist("test", root=target, mirrors=[_closed_port_url(), url])

    assert images.shape == (10_000, 28, 28)
    assert sorted(p.name for p in target.iterdir()) == TEST_FILES  # no temporary file left behind


@needs_debian_files
def test_download_goes_to_the_cache_when_no_root(served_folder: tuple[Path, str], tmp_path: Path) -> None:
    mirror_dir, url = served_folder
    for name in TEST_FILES:
        shutil.copy(SYSTEM_DIR / name, mirror_dir / name)
    missing_system = tmp_path / "no-system"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("fmfl.datasets.fashion_mnist.SYSTEM_DIR", missing_system)
        load_fashion_mnist("test", mirrors=[url])

    assert (tmp_path / "xdg-cache" / "fmfl" / "fashion-mnist" / TEST_FILES[0]).is_file()


def test_checksum_mismatch_is_refused(served_folder: tuple[Path, str], tmp_path: Path) -> None:
    mirror_dir, url = served_folder
    write_idx(mirror_dir / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), dtype=np.uint8))
    target = tmp_path / "downloaded"

    with pytest.raises(DatasetUnavailable, match="checksum mismatch"):
        load_fashion_mnist("test", root=target, mirrors=[url])
    assert not list(target.iterdir())


def test_offline_error_says_how_to_get_the_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as info:
        load_fashion_mnist("test", root=tmp_path / "empty", mirrors=[_closed_port_url()])

    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "empty") in message
    assert "Download failed" in message
    assert "127.0.0.1" in message


def test_no_download_when_disabled(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path, download=False)


def test_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="split must be"):
        load_fashion_mnist("validation")  # type: ignore[arg-type]


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), dtype=np.uint8))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not an idx file at all")

    with pytest.raises(IdxFormatError, match=r"t10k-labels-idx1-ubyte\.gz"):
        load_fashion_mnist("test", root=tmp_path)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8), "3 images but"),
        (np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.uint8), "expected \\(28, 28\\)"),
        (np.zeros((2, 28, 28), np.uint8), np.array([1, 10], np.uint8), "label 10 outside"),
    ],
)
def test_inconsistent_files_are_rejected(
    tmp_path: Path, images: np.ndarray, labels: np.ndarray, message: str
) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)

    with pytest.raises(IdxFormatError, match=message):
        load_fashion_mnist("test", root=tmp_path)

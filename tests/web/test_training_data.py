"""The web device's data readers in node against numpy and the Python readers: .npz shards as ``write_npz`` and
``np.savez_compressed`` write them, .npy dtypes, labels resolved against the manifest's names, and each refusal
(missing arrays, pickled arrays, wrong counts, labels outside the model) with a message naming the file."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from support.web_training_node import run_js

from fmfl.edge_client.data import write_npz
from fmfl.edge_client.data.npz_file import read_npz

READ = """
  const bytes = Uint8Array.from(Buffer.from(input.b64, "base64"));
  try {
    const raw = await device.readNpz(bytes, input.name);
    const labels = device.resolveLabels(raw.labels, raw.labelOrigins, input.names);
    output({shape: raw.images.shape, dtype: raw.images.dtype, images: Array.from(raw.images.data),
            labels: Array.from(labels.indices, Number), names: labels.names});
  } catch (e) { output({error: e.name, message: e.message}); }
"""
NAMES = ["T-shirt/top", "Trouser", "Pullover"]


def _read(data: bytes, name: str = "shard.npz", names: list[str] | None = NAMES) -> dict[str, object]:
    return run_js(READ, {"b64": base64.b64encode(data).decode(), "name": name, "names": names})  # type: ignore[no-any-return]


def test_write_npz_shard_reads_back_as_the_python_reader_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), np.array([0, 2, 1, 1, 0, 2, 2])
    path = write_npz(tmp_path / "shard.npz", images, labels)
    raw = read_npz(path)
    got = _read(path.read_bytes())
    assert got["shape"] == list(raw.images.shape)
    assert got["dtype"] == "|u1"
    assert np.array_equal(np.array(got["images"], dtype=np.uint8).reshape(images.shape), raw.images)
    assert got["labels"] == labels.tolist()
    assert got["names"] == NAMES


def test_compressed_npz_with_x_and_y_keys_and_rgb_images() -> None:
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (4, 3, 3, 3), dtype=np.uint8), np.array([1, 0, 1, 2], dtype=np.int32)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=images, y=labels)
    got = _read(buf.getvalue())
    assert got["shape"] == [4, 3, 3, 3]
    assert np.array_equal(np.array(got["images"], dtype=np.uint8), images.ravel())
    assert got["labels"] == labels.tolist()


def _npz(**arrays: object) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


@pytest.mark.parametrize(("data", "message"), [
    (_npz(pixels=np.zeros((2, 2, 2), np.uint8), labels=np.zeros(2, np.int64)),
     "bad.npz: arrays [\"labels\",\"pixels\"]; expected 'images' (or 'x') and 'labels' (or 'y')"),
    (_npz(images=np.zeros((2, 2, 2), np.uint8), labels=np.zeros(3, np.int64)), "bad.npz: 2 images but 3 labels"),
    (_npz(images=np.zeros((2, 2, 2), np.uint8), labels=np.zeros(2, np.float32)),
     "bad.npz: 'labels' must be a 1-D integer array, got <f4 [2]"),
    (_npz(images=np.zeros((0, 2, 2), np.uint8), labels=np.zeros(0, np.int64)), "bad.npz: holds no samples"),
    (_npz(images=np.array([{"a": 1}, None], dtype=object), labels=np.zeros(2, np.int64)),
     "bad.npz ['images']: dtype |O: object arrays are pickles and are refused"),
    (b"this is a text file, not an archive", "bad.npz: not a readable .npz/zip archive (no end of central directory)"),
    (_npz(images=np.zeros((2, 2, 2), np.uint8), labels=np.array([0, 3])),
     "bad.npz ['labels']: label 3 is outside the model's 3 labels (0..2: T-shirt/top, Trouser, Pullover)"),
    (_npz(images=np.zeros((2, 2, 2), np.uint8), labels=np.array([0, -1])), "bad.npz ['labels']: label -1 is negative"),
])
def test_bad_archives_are_refused_with_the_file_named(data: bytes, message: str) -> None:
    assert _read(data, "bad.npz") == {"error": "DataError", "message": message}


def test_label_names_resolve_like_the_python_device() -> None:
    got = run_js("""
      const r = (raw, names) => { try { const x = device.resolveLabels(raw, raw.map((_, i) => `pics/${i}/`), names);
        return [Array.from(x.indices, Number), x.names]; } catch (e) { return [e.name, e.message]; } };
      output([r(["Trouser", "T-shirt/top", "2", 1], input), r(["Dog"], input), r(["7"], input),
              r(["cat", "dog", "cat"], null), r(["3", 1], null), r(["cat", "1"], null)]);
    """, NAMES)
    assert got[0] == [[1, 0, 2, 1], NAMES]
    assert got[1] == ["DataError",
                      'pics/0/: label "Dog" is not one of the model\'s labels (T-shirt/top, Trouser, Pullover)']
    assert got[2][0] == "DataError"
    assert 'label "7" is not one of' in got[2][1]
    assert got[3] == [[0, 1, 0], ["cat", "dog"]]
    assert got[4] == [[3, 1], ["0", "1", "2", "3"]]
    assert got[5] == ["DataError",
                      'pics/1/: label "1" is an index but other labels are class names; use all names or all indices']


def test_npy_dtypes_and_truncation() -> None:
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, -2], dtype=np.int64),
              np.array([3.5], dtype=np.float64), np.arange(4, dtype=np.uint8)]
    blobs = []
    for a in arrays:
        buf = io.BytesIO()
        np.save(buf, a)
        blobs.append(base64.b64encode(buf.getvalue()).decode())
    got = run_js("""
      const res = input.map((b) => { const a = device.parseNpy(Uint8Array.from(Buffer.from(b, "base64")));
        return [a.dtype, a.shape, Array.from(a.data, Number)]; });
      const cut = Uint8Array.from(Buffer.from(input[0], "base64")).subarray(0, 130);
      try { device.parseNpy(cut, "w.npy"); } catch (e) { res.push([e.name, e.message]); }
      output(res);
    """, blobs)
    for a, (dtype, shape, values) in zip(arrays, got[:4], strict=True):
        assert dtype == a.dtype.str
        assert shape == list(a.shape)
        assert values == a.ravel().tolist()
    assert got[4] == ["DataError", "w.npy: holds 2 data bytes, its header promises 24 (truncated file)"]

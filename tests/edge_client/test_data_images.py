"""Image readers (folder, IDX, npz) and the pixel pipeline, on real Fashion-MNIST slices and tiny files."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fmfl.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from fmfl.datasets.idx import write_idx
from fmfl.edge_client.data import (
    DataFormat,
    ImagePreprocessing,
    detect_format,
    read_local_data,
    write_image_folder,
    write_npz,
)
from fmfl.edge_client.data.images import fit_image_array, normalize

MEAN, STD = [0.5, 0.4, 0.3], [0.5, 0.25, 0.2]


def image_pre(size: int = 32, channels: int = 3) -> dict[str, Any]:
    return {
        "image": {
            "size": size,
            "channels": channels,
            "mean": MEAN[:channels],
            "std": STD[:channels],
            "input_name": "pixel_values",
        }
    }


def reference_pixels(images: np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """The slow, obviously correct pipeline: Pillow per image, float64 arithmetic per pixel."""
    out = []
    for image in images:
        pil = Image.fromarray(image).convert("RGB" if channels == 3 else "L")
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
        x = np.asarray(pil, dtype=np.float64).reshape(size, size, channels) / 255.0
        out.append(((x - MEAN[:channels]) / STD[:channels]).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="module")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_fashion_mnist("test")
    return images[:60], labels[:60]


def test_npz_matches_reference_pipeline(tmp_path: Path, fashion: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = fashion
    path = write_npz(tmp_path / "shard.npz", images, labels)

    data = read_local_data(path, image_pre(32), list(FASHION_MNIST_CLASSES))

    pixels = data.inputs["pixel_values"]
    assert pixels.dtype == np.float32
    assert pixels.shape == (60, 3, 32, 32)
    np.testing.assert_allclose(pixels, reference_pixels(images, 32), atol=1e-6)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.label_names == FASHION_MNIST_CLASSES


def test_native_size_fast_path_equals_pillow(fashion: tuple[np.ndarray, np.ndarray]) -> None:
    spec = ImagePreprocessing(28, 3, tuple(MEAN), tuple(STD))

    fast = normalize(fit_image_array(fashion[0], spec, "x"), spec)

    np.testing.assert_allclose(fast, reference_pixels(fashion[0], 28), atol=1e-6)


def test_npz_with_x_y_keys_and_rgb_arrays(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(4, 20, 24, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=rgb, y=np.array([0, 1, 1, 0], dtype=np.int32))

    data = read_local_data(tmp_path / "d.npz", image_pre(16))

    np.testing.assert_allclose(data.inputs["pixel_values"], reference_pixels(rgb, 16), atol=1e-6)
    assert data.label_names == ("0", "1")


def test_one_channel_model(tmp_path: Path, fashion: tuple[np.ndarray, np.ndarray]) -> None:
    path = write_npz(tmp_path / "g.npz", fashion[0][:5], fashion[1][:5])

    pixels = read_local_data(path, image_pre(28, channels=1)).inputs["pixel_values"]

    assert pixels.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(pixels, reference_pixels(fashion[0][:5], 28, channels=1), atol=1e-6)


def test_image_folder_with_png_and_jpg(tmp_path: Path, fashion: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = fashion
    names = ["Trouser", "Bag", "Sandal"]
    chosen = [i for i, y in enumerate(labels) if FASHION_MNIST_CLASSES[y] in names][:9]
    index = [names.index(FASHION_MNIST_CLASSES[labels[i]]) for i in chosen]
    write_image_folder(tmp_path / "data", images[chosen], index, names)
    Image.fromarray(images[0]).convert("RGB").save(tmp_path / "data" / "Bag" / "extra.JPG", quality=95)
    (tmp_path / "data" / "Bag" / "notes.txt").write_text("not an image, skipped")
    (tmp_path / "data" / ".thumbs").mkdir()
    (tmp_path / "data" / "Empty").mkdir()  # a class this device has no sample of

    data = read_local_data(tmp_path / "data", image_pre(28), list(FASHION_MNIST_CLASSES))

    assert len(data) == len(chosen) + 1
    assert detect_format(tmp_path / "data")[0] is DataFormat.IMAGE_FOLDER
    expected = [FASHION_MNIST_CLASSES.index(names[k]) for k in index]
    assert sorted(data.labels.tolist()) == sorted([*expected, FASHION_MNIST_CLASSES.index("Bag")])
    # The PNG files hold exactly the source pixels: every decoded image is one of the originals.
    decoded = (data.inputs["pixel_values"][:, 0] * STD[0] + MEAN[0]) * 255
    originals = images[chosen].astype(np.float32)
    lossless = [np.abs(decoded[k] - originals).max(axis=(1, 2)).min() < 1e-3 for k in range(len(data))]
    assert sum(lossless) == len(chosen)  # all but the JPEG


def test_image_folder_without_manifest_labels_sorts_class_names(tmp_path: Path) -> None:
    tiny = np.zeros((3, 8, 8), dtype=np.uint8)
    write_image_folder(tmp_path, tiny, [2, 0, 1], ["zebra", "ant", "moth"])

    data = read_local_data(tmp_path, image_pre(8))

    assert data.label_names == ("ant", "moth", "zebra")
    assert sorted(data.labels.tolist()) == [0, 1, 2]


def test_rgba_and_palette_files_become_rgb(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(tmp_path / "a" / "rgba.png")
    Image.new("P", (10, 10), 3).save(tmp_path / "a" / "palette.png")

    pixels = read_local_data(tmp_path, image_pre(10)).inputs["pixel_values"]

    assert pixels.shape == (2, 3, 10, 10)
    red = (np.array([1.0, 0.0, 0.0]) - MEAN) / STD
    np.testing.assert_allclose(pixels[1, :, 0, 0], red, atol=1e-6)  # alpha dropped, colour kept


def test_idx_folder_from_real_files(tmp_path: Path, fashion: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = fashion
    write_idx(tmp_path / "client-images-idx3-ubyte.gz", images[:25])
    write_idx(tmp_path / "client-labels-idx1-ubyte", labels[:25].astype(np.uint8))

    data = read_local_data(tmp_path, image_pre(28), list(FASHION_MNIST_CLASSES))

    assert detect_format(tmp_path)[0] is DataFormat.IDX
    np.testing.assert_array_equal(data.labels, labels[:25])
    np.testing.assert_allclose(data.inputs["pixel_values"], reference_pixels(images[:25], 28), atol=1e-6)


def test_custom_input_name(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", np.zeros((2, 4, 4), np.uint8), [0, 1])
    pre = image_pre(4)
    pre["image"]["input_name"] = "images"

    assert list(read_local_data(path, pre).inputs) == ["images"]


def test_idx_images_file_picks_its_pair_from_the_debian_folder() -> None:
    system = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    if not system.is_file():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    images, labels = load_fashion_mnist("test")

    data = read_local_data(system, image_pre(28, channels=1), list(FASHION_MNIST_CLASSES))

    assert detect_format(system) == (DataFormat.IDX, system)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_allclose(
        data.inputs["pixel_values"][:50], reference_pixels(images[:50], 28, 1), atol=1e-6
    )


def test_class_folder_named_by_index(tmp_path: Path) -> None:
    write_image_folder(tmp_path, np.zeros((2, 8, 8), np.uint8), [0, 1], ["0", "Trouser"])

    data = read_local_data(tmp_path, image_pre(8), list(FASHION_MNIST_CLASSES))

    assert sorted(data.labels.tolist()) == [0, 1]  # "0/" is T-shirt/top, "Trouser/" by name

"""preprocess.js against Pillow and the Python device's preprocessing: uint8 in, bit-identical uint8 out for
Pillow's BILINEAR resize (upscaling, downscaling, odd sizes, 1/3 channels), convert("L"), and the whole
fit + normalise path of src/fmfl/edge_client/data/images.py on real Fashion-MNIST images (28 -> 64 and 32 px)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support.web_training_node import run_js

from fmfl.datasets.fashion_mnist import load_fashion_mnist
from fmfl.edge_client.data.images import fit_image_array, normalize
from fmfl.edge_client.data.preprocessing import ImagePreprocessing

RESIZE = """
  output(input.map((c) => Array.from(device.resizeBilinear(Uint8Array.from(c.px), c.w, c.h, c.c, c.ow, c.oh))));
"""
SHAPES = [  # (height, width, channels, out height, out width)
    (28, 28, 1, 64, 64), (28, 28, 3, 32, 32), (17, 33, 3, 64, 7), (100, 80, 3, 32, 32), (5, 5, 1, 5, 9),
    (64, 64, 3, 13, 64), (300, 200, 1, 32, 32), (1, 1, 3, 4, 4), (2, 9, 1, 1, 1), (33, 31, 3, 33, 16),
]


def test_bilinear_resize_is_bit_identical_to_pillow_on_random_images() -> None:
    rng = np.random.default_rng(0)
    cases, expected = [], []
    for h, w, c, oh, ow in SHAPES:
        px = rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)
        expected.append(np.asarray(Image.fromarray(px).resize((ow, oh), Image.Resampling.BILINEAR)))
        cases.append({"px": px.ravel().tolist(), "w": w, "h": h, "c": c, "ow": ow, "oh": oh})
    for shape, want, got in zip(SHAPES, expected, run_js(RESIZE, cases), strict=True):
        assert np.array_equal(np.array(got, dtype=np.uint8), want.ravel()), shape


def test_rgb_to_gray_is_pillows_convert_l() -> None:
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    got = run_js("output(Array.from(device.convertChannels(Uint8Array.from(input), 3, 1)));", px.ravel().tolist())
    assert np.array_equal(np.array(got, dtype=np.uint8), np.asarray(Image.fromarray(px).convert("L")).ravel())


@pytest.mark.parametrize("size", [64, 32])
def test_fashion_mnist_fit_and_normalise_equal_the_python_device(size: int) -> None:
    images = load_fashion_mnist("train").images[:60]
    spec = ImagePreprocessing(size=size, channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    want = normalize(fit_image_array(images, spec, "fmnist"), spec)
    got = run_js("""
      const spec = {size: input.size, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
                    input_name: "pixel_values"};
      const images = {dtype: "|u1", shape: input.shape, data: Uint8Array.from(input.px)};
      const fitted = device.fitImageArray(images, spec, "fmnist");
      output(Array.from(device.normalize(fitted, input.shape[0], spec)));
    """, {"size": size, "shape": list(images.shape), "px": images.ravel().tolist()})
    assert np.array_equal(np.array(got, dtype=np.float32), want.ravel())


def test_rgba_and_gray_models_fit_like_the_python_device() -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 21, 19, 4), dtype=np.uint8)
    out = {}
    for channels in (1, 3):
        spec = ImagePreprocessing(size=24, channels=channels, mean=(0.2,) * channels, std=(0.3,) * channels)
        out[channels] = normalize(fit_image_array(images, spec, "rgba"), spec)
    got = run_js("""
      const res = {};
      for (const channels of [1, 3]) {
        const spec = {size: 24, channels, mean: Array(channels).fill(0.2), std: Array(channels).fill(0.3),
                      input_name: "x"};
        const images = {dtype: "|u1", shape: input.shape, data: Uint8Array.from(input.px)};
        const fitted = device.fitImageArray(images, spec, "rgba");
        res[channels] = Array.from(device.normalize(fitted, 3, spec));
      }
      output(res);
    """, {"shape": list(images.shape), "px": images.ravel().tolist()})
    for channels in (1, 3):
        assert np.array_equal(np.array(got[str(channels)], dtype=np.float32), out[channels].ravel()), channels


def test_images_that_are_not_uint8_or_badly_shaped_are_refused() -> None:
    got = run_js("""
      const spec = {size: 8, channels: 3, mean: [0, 0, 0], std: [1, 1, 1], input_name: "x"};
      const msg = (f) => { try { f(); return null; } catch (e) { return [e.name, e.message]; } };
      const floats = {dtype: "<f4", shape: [1, 2, 2], data: new Float32Array(4)};
      const twoChannels = {dtype: "|u1", shape: [1, 2, 2, 2], data: new Uint8Array(8)};
      output([msg(() => device.fitImageArray(floats, spec, "a.npz")),
              msg(() => device.fitImageArray(twoChannels, spec, "b.npz"))]);
    """)
    assert got[0] == ["DataError", "a.npz: images must be uint8 (0..255), got dtype <f4"]
    assert got[1][0] == "DataError"
    assert got[1][1].startswith("b.npz: images must have shape")

"""Image files and arrays to the model's pixel tensor: decode, resize, normalise.

Every image goes through Pillow: ``convert("RGB")`` (grayscale replicated to three channels, alpha dropped)
or ``convert("L")`` for one-channel models, then ``resize((size, size), BILINEAR)`` unless it already has that
size. The stacked uint8 pixels are mapped to ``(x / 255 - mean) / std`` through a 256-entry table per channel,
which is exact and avoids a float intermediate of the whole stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from fmfl.edge_client.data.errors import DataError
from fmfl.edge_client.data.preprocessing import ImagePreprocessing

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})


def _fit(image: Image.Image, spec: ImagePreprocessing) -> npt.NDArray[np.uint8]:
    image = image.convert("RGB" if spec.channels == 3 else "L")
    if image.size != (spec.size, spec.size):
        image = image.resize((spec.size, spec.size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def load_image_files(paths: Sequence[Path], spec: ImagePreprocessing) -> npt.NDArray[np.uint8]:
    """Decode and resize image files into uint8 [N, size, size, channels]; a bad file is a DataError."""
    out = np.empty((len(paths), spec.size, spec.size, spec.channels), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                out[i] = _fit(image, spec)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: cannot decode image ({exc})") from exc
    return out


def fit_image_array(
    images: npt.NDArray[np.generic], spec: ImagePreprocessing, origin: str
) -> npt.NDArray[np.uint8]:
    """Resize a uint8 [N, H, W] or [N, H, W, 1|3|4] array into uint8 [N, size, size, channels].

    Raises:
        DataError: another dtype or shape (``origin`` names the file in the message).
    """
    if images.dtype != np.uint8:
        raise DataError(f"{origin}: images must be uint8 (0..255), got dtype {images.dtype}")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[3] in (1, 3, 4))):
        raise DataError(
            f"{origin}: images must have shape [N, H, W] or [N, H, W, C] with C in 1, 3, 4; "
            f"got {images.shape}"
        )
    pixels: npt.NDArray[np.uint8] = images.astype(np.uint8, copy=False)
    if pixels.ndim == 4 and pixels.shape[3] == 1:
        pixels = pixels[:, :, :, 0]
    n, height, width = pixels.shape[:3]
    if (height, width) == (spec.size, spec.size) and pixels.ndim == 3:
        # Fast path (Fashion-MNIST at its own size): no Pillow round trip per image.
        return np.ascontiguousarray(np.repeat(pixels[:, :, :, None], spec.channels, axis=3))
    out = np.empty((n, spec.size, spec.size, spec.channels), dtype=np.uint8)
    for i in range(n):
        out[i] = _fit(Image.fromarray(pixels[i]), spec)
    return out


def normalize(pixels: npt.NDArray[np.uint8], spec: ImagePreprocessing) -> npt.NDArray[np.float32]:
    """uint8 [N, H, W, C] to float32 [N, C, H, W] holding ``(x / 255 - mean) / std`` per channel."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    tables = [((levels - m) / s).astype(np.float32) for m, s in zip(spec.mean, spec.std, strict=True)]
    # Transposing the uint8 stack first makes each lookup read and write contiguous memory (4x less to move
    # than transposing floats); one lookup serves every channel when they share mean and std.
    planes = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
    if all(np.array_equal(table, tables[0]) for table in tables):
        return tables[0][planes]
    out = np.empty(planes.shape, dtype=np.float32)
    for c, table in enumerate(tables):
        out[:, c] = table[planes[:, c]]
    return out

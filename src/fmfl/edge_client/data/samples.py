"""What a reader hands over before preprocessing: images, texts and raw labels, with where each came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fmfl.edge_client.data.labels import Origins, RawLabel


@dataclass(frozen=True)
class RawSamples:
    """Samples as read from disk.

    Attributes:
        source: the file or folder read.
        images: image files to decode, or a uint8 array [N, H, W(, C)]; None for text.
        texts: one text per sample (a caption for image-caption data); None for images only.
        labels: raw labels (names or indices) or None when the data carries none.
        label_origins: where each label was read ("file:line", or the class folder), or one string for all.
    """

    source: Path
    images: Sequence[Path] | npt.NDArray[np.uint8] | None = None
    texts: Sequence[str] | None = None
    labels: Sequence[RawLabel] | npt.NDArray[np.integer] | None = None
    label_origins: Origins = ""

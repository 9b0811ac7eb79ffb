"""Label flipping: malicious clients train honestly on data whose labels they permuted.

Data poisoning as in Biggio, Nelson, Laskov 2012, "Poisoning Attacks against Support Vector Machines",
ICML, and, for federated learning, Tolpegin, Truex, Gursoy, Liu 2020, "Data Poisoning Attacks Against
Federated Learning Systems", ESORICS. Here every label ``l`` of ``C`` classes becomes ``C - 1 - l``
(Fashion-MNIST: T-shirt/top <-> Ankle boot, Trouser <-> Bag, ...); the update itself is computed and sent by
the unmodified training code.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fmfl.simulation.attacks.base import Attack, LabelArray


def flip_labels(labels: LabelArray, num_classes: int) -> LabelArray:
    """``num_classes - 1 - labels``; refuses labels outside ``[0, num_classes)``."""
    y = np.asarray(labels)
    if num_classes < 2:
        raise ValueError(f"label flipping needs at least 2 classes, got {num_classes}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels span [{int(y.min())}, {int(y.max())}], outside [0, {num_classes})")
    flipped: LabelArray = (num_classes - 1 - y).astype(np.int64)
    return flipped


class LabelFlip(Attack):
    """Train on ``C - 1 - label``."""

    name: ClassVar[str] = "label-flip"
    poisons_data: ClassVar[bool] = True

    def poison_labels(self, labels: LabelArray, num_classes: int) -> LabelArray:
        return flip_labels(labels, num_classes)

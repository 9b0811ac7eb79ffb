"""The Python device's data: real Fashion-MNIST, as tests/edge_client uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def fmnist_shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real Fashion-MNIST training images as the device's .npz."""
    from fmfl.datasets.fashion_mnist import load_fashion_mnist
    from fmfl.edge_client.data import write_npz

    data = load_fashion_mnist("train")
    path = tmp_path_factory.mktemp("data") / "shard.npz"
    write_npz(path, data.images[:600], data.labels[:600].astype(np.int64))
    return path

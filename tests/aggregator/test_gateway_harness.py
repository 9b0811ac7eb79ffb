"""The gateway harness (tests/support/gateway_harness.py) itself: what every gateway test builds on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.gateway_harness import bundle_info, make_synthetic_bundle, make_update

from fmfl.protocol import Limits, RoundTask, decode_update


def test_synthetic_bundle_verifies(tmp_path: Path) -> None:
    bundle = make_synthetic_bundle(tmp_path / "b", 50)
    bundle_id, weights = bundle_info(bundle)
    assert weights.shape == (50,)
    assert weights.dtype == np.float32
    assert len(bundle_id) == 24


def test_make_update_roundtrips_through_the_decoder() -> None:
    task = RoundTask("default", "b1", 1, 0, ("c1",), 8, 0.1, "topk:0.25+int8", 1e9, 7, local_epochs=1)
    delta = np.linspace(-1, 1, 40).astype(np.float32)
    update, sent = make_update(task, "c1", delta)
    got = decode_update(update.payload, 40, Limits.for_vector_size(40))
    assert np.array_equal(got.indices, sent.indices)
    assert np.array_equal(got.values, sent.values)

"""The downlink: a lossy global-model delta still leaves gateway and devices with bit-identical weights.

Both sides run their own code: the gateway's record moves by ``apply_sent`` (what fmfl.aggregator.core.downlink
uses) and the device applies the received GlobalModel with ``apply_delta`` (what the device's model feed
calls), which also checks ``weights_sha256``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fmfl.protocol import GlobalModel, Limits, UpdateEncoder, decode_update
from fmfl.protocol.downlink import apply_delta, apply_sent, weights_sha256


@pytest.mark.parametrize("mode", ["round delta with ef", "gap to device copy without ef"])
def test_devices_applying_lossy_deltas_stay_bit_identical_to_the_gateway(mode: str) -> None:
    # Prepare: the gateway's model moves each round; devices hold version 0, sent dense.
    size = 5000
    rng = np.random.default_rng(9)
    limits = Limits.for_vector_size(size)
    true_weights = rng.normal(size=size).astype(np.float32)
    device_copy = true_weights.copy()  # the gateway's record of what devices hold
    device_weights = decode_update(UpdateEncoder("dense", size).encode(true_weights), size, limits).to_dense()
    downlink = UpdateEncoder("topk:0.05+int8" + ("+ef" if mode.endswith("with ef") else ""), size)
    for version in range(1, 21):
        change = rng.normal(scale=1e-3, size=size).astype(np.float32)
        true_weights = true_weights + change
        # Execute: encode either the round's change (error feedback keeps the rest) or the whole gap to the
        # devices' copy (which already holds the rest: adding ef would count it twice). Apply what was sent.
        delta = change if mode.endswith("with ef") else true_weights - device_copy
        payload, sent = downlink.encode_sparse(delta)
        device_copy = apply_sent(device_copy, sent)
        message = GlobalModel("bundle", model_version=version, base_version=version - 1, payload=payload,
                              weights_sha256=weights_sha256(device_copy))
        received = GlobalModel.from_bytes(message.to_bytes(), limits)
        device_weights = apply_delta(device_weights, received, limits)  # raises hash_mismatch on any drift
        # Assert: bit-identical every round.
        np.testing.assert_array_equal(device_weights, device_copy)
    # And close to the true model despite 5% top-k + int8 (the per-round change has scale 1e-3).
    assert np.max(np.abs(device_weights - true_weights)) < 0.01

"""Downlink-delta golden vectors (golden_downlink.json, made by make_golden_downlink.py; docs/protocol.md 2b, 9):
the gateway code still writes these bytes, and a device that follows the text reproduces the weights bit for bit
from the delta's chunks, refuses the traps, and keeps its weights when it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmfl.protocol import GlobalModel, Limits, ProtocolError, Reassembler, Topics, decode_update
from fmfl.protocol.downlink import apply_delta, dense_weights, weights_sha256
from fmfl.protocol.framing import frame, unframe
from protocol.make_golden_downlink import vectors  # the generator: tests/ is on sys.path

GOLDEN = json.loads(Path(__file__).with_name("golden_downlink.json").read_text())
LIMITS = Limits.for_vector_size(12)


def _f32(key: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(GOLDEN[key]), dtype="<f4").copy()


def test_the_gateway_still_writes_every_byte() -> None:
    assert vectors() == GOLDEN


def test_chunks_fed_in_reverse_reassemble_into_a_delta_that_rebuilds_the_gateways_weights() -> None:
    # Prepare: a device holding version 11 gets the delta's chunks last first, grouped by `.../delta`.
    topics = Topics("default")
    reassembler = Reassembler(LIMITS.max_message_bytes)
    base = _f32("base_f32_hex")
    message = None
    # Execute
    for packet in reversed(GOLDEN["delta_packets"]):
        kind, _ = topics.parse(packet["topic"])
        assert kind == "delta"
        message = reassembler.add(bytes.fromhex(packet["hex"]), source=kind) or message
    assert message is not None
    assert message.hex() == GOLDEN["delta_message_hex"]
    model = GlobalModel.from_bytes(message, LIMITS)
    weights = apply_delta(base, model, LIMITS)
    # Assert: bit for bit the gateway's version 12, equal to the dense copy, and the base untouched.
    assert (model.base_version, model.model_version, model.run) == (11, 12, GOLDEN["run"])
    assert weights.astype("<f4").tobytes().hex() == GOLDEN["weights_f32_hex"]
    assert weights_sha256(weights) == model.weights_sha256 == GOLDEN["weights_sha256"]
    dense = dense_weights(GlobalModel.from_bytes(bytes.fromhex(GOLDEN["dense_message_hex"]), LIMITS), 12, LIMITS)
    assert dense.tobytes() == weights.tobytes()
    assert base.astype("<f4").tobytes().hex() == GOLDEN["base_f32_hex"]


def test_the_minus_zero_trap_adding_zeros_everywhere_breaks_the_hash() -> None:
    # The rule: add only at decoded indices. Index 9 holds -0.0 and is not sent; -0.0 + 0.0 = +0.0.
    delta = decode_update(bytes.fromhex(GOLDEN["delta_payload_hex"]), 12, LIMITS)
    assert 9 not in delta.indices.tolist()
    wrong = _f32("zeros_added_everywhere_f32_hex")
    assert wrong.tobytes() != _f32("weights_f32_hex").tobytes()
    assert np.array_equal(wrong, _f32("weights_f32_hex"))  # equal as numbers, not as bits
    assert weights_sha256(wrong) != GOLDEN["weights_sha256"]


@pytest.mark.parametrize("case", ["wrong base", "flipped value byte"])
def test_a_delta_on_the_wrong_base_or_corrupted_is_refused_and_the_base_is_unchanged(case: str) -> None:
    model = GlobalModel.from_bytes(bytes.fromhex(GOLDEN["delta_message_hex"]), LIMITS)
    base = _f32("wrong_base_f32_hex") if case == "wrong base" else _f32("base_f32_hex")
    if case == "flipped value byte":  # a payload whose CRCs were recomputed: only the hash can tell
        payload = bytearray(model.payload)
        payload[-1] ^= 0x01
        model = GlobalModel(model.bundle_id, 12, 11, bytes(payload), run=model.run,
                            weights_sha256=model.weights_sha256)
    before = base.tobytes()
    # Execute / Assert
    with pytest.raises(ProtocolError) as err:
        apply_delta(base, model, LIMITS)
    assert err.value.reason == "hash_mismatch"
    assert "weights_sha256" in str(err.value)
    assert base.tobytes() == before


def test_weights_sha256_must_be_64_lowercase_hex_digits() -> None:
    with pytest.raises(ProtocolError) as err:
        GlobalModel("b1", 12, 11, b"", weights_sha256="B" * 64)
    assert err.value.reason == "bad_metadata"


def test_the_deltas_flag_round_trips_and_must_be_a_boolean() -> None:
    model = GlobalModel("b1", 12, None, b"", run=GOLDEN["run"], deltas=True)
    assert GlobalModel.from_bytes(model.to_bytes(), LIMITS).deltas is True
    assert b'"deltas":true' in model.to_bytes()
    assert b"deltas" not in GlobalModel("b1", 12, None, b"").to_bytes()  # absent unless set: 1.1 bytes unchanged
    _, metadata, payload = unframe(model.to_bytes(), LIMITS)
    with pytest.raises(ProtocolError) as err:
        GlobalModel.from_bytes(frame(GlobalModel.TYPE, {**metadata, "deltas": "yes"}, payload), LIMITS)
    assert err.value.reason == "bad_metadata"

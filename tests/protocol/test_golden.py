"""Golden vectors: fixed payload bytes decode to fixed values, and the encoder still writes those bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmfl.protocol import Limits, UpdateEncoder, decode_update

GOLDEN = json.loads(Path(__file__).with_name("golden_vectors.json").read_text())


def _ids(vector: dict[str, Any]) -> str:
    return f"{vector['input']}-{vector['chain']}"


@pytest.mark.parametrize("vector", GOLDEN["vectors"], ids=_ids)
def test_golden_bytes_decode_to_golden_values(vector: dict[str, Any]) -> None:
    # Prepare
    size = len(GOLDEN["inputs"][vector["input"]])
    payload = bytes.fromhex(vector["payload_hex"])
    # Execute
    update = decode_update(payload, size, Limits.for_vector_size(size))
    # Assert
    assert update.indices.tolist() == vector["indices"]
    assert update.values.astype("<f4").tobytes().hex() == vector["values_f32_hex"]
    assert update.values.tolist() == vector["values"]


@pytest.mark.parametrize("vector", GOLDEN["vectors"], ids=_ids)
def test_encoder_still_writes_golden_bytes(vector: dict[str, Any]) -> None:
    delta = np.array(GOLDEN["inputs"][vector["input"]], dtype=np.float32)
    encoder = UpdateEncoder(vector["chain"], delta.size, GOLDEN["tensor_sizes"][vector["input"]], seed=7)
    payload = encoder.encode(delta, seed=GOLDEN["seed"])
    if "zstd" in vector["chain"]:
        # zstd output may differ between library versions; the decoded content may not.
        update = decode_update(payload, delta.size, Limits.for_vector_size(delta.size))
        assert update.values.astype("<f4").tobytes().hex() == vector["values_f32_hex"]
    else:
        assert payload.hex() == vector["payload_hex"]

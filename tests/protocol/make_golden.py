"""Regenerate tests/protocol/golden_vectors.json (run by hand; the tests never run it).

    .venv/bin/python -m tests.protocol.make_golden

Golden vectors freeze the wire format: bytes in, values out. Regenerate only for a new payload format,
and say so in docs/protocol.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fmfl.protocol import UpdateEncoder, decode_update
from fmfl.protocol.limits import Limits

# Dyadic inputs (k / 64) so every value is exact in float32 and in the JSON below.
INPUT = [
    0.5, -0.25, 0.0, 1.5, -2.0, 0.125, 0.0, -0.0625, 3.0, 0.0,
    -1.0, 0.75, 0.0, 0.0, -0.5, 0.03125, 2.5, 0.0, -3.5, 0.25,
]  # fmt: skip
CASES = [
    ("small", "dense"),
    ("small", "fp16"),
    ("small", "topk:4"),
    ("small", "topk:0.25+int8"),
    ("small", "topk:0.5+int8:block=4"),
    ("small", "topk:6+int4"),
    ("small", "topk:0.3+sign"),
    ("small", "int8:per_tensor"),
    ("small", "topk:0.5,per_tensor+int8:per_tensor"),
    ("small", "randk:5"),
    ("small", "topk:0.25+int8+zstd"),
    ("small", "topk:12"),
    ("wide", "topk:3"),
    ("wide", "topk:4+int8"),
    ("wide", "topk:4+sign+zstd"),
]
TENSOR_SIZES = {"small": [12, 8], "wide": [300]}


def inputs() -> dict[str, list[float]]:
    wide = [0.0] * 300
    wide[5], wide[150], wide[200], wide[299] = 1.0, 0.25, -2.0, 0.5
    return {"small": INPUT, "wide": wide}


def main() -> None:
    vectors = []
    named = inputs()
    for name, chain in CASES:
        delta = np.array(named[name], dtype=np.float32)
        limits = Limits.for_vector_size(delta.size)
        encoder = UpdateEncoder(chain, delta.size, TENSOR_SIZES[name], seed=7)
        payload = encoder.encode(delta, seed=1234)
        update = decode_update(payload, delta.size, limits)
        vectors.append(
            {
                "input": name,
                "chain": chain,
                "payload_hex": payload.hex(),
                "indices": update.indices.tolist(),
                "values_f32_hex": update.values.astype("<f4").tobytes().hex(),
                "values": [float(v) for v in update.values],
            }
        )
    document = {"inputs": named, "tensor_sizes": TENSOR_SIZES, "seed": 1234, "vectors": vectors}
    path = Path(__file__).with_name("golden_vectors.json")
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {len(vectors)} vectors to {path}")


if __name__ == "__main__":
    main()

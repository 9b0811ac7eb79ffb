"""Regenerate tests/protocol/golden_downlink.json, the downlink-delta vectors (run by hand; tests never run it).

    .venv/bin/python tests/protocol/make_golden_downlink.py

docs/protocol.md section 2b and section 9 ("Downlink vectors"): a 12-float model of version 11, the
gateway's re-based version 12 (its delta, `topk:0.5+int8+ef`, and the dense copy, both with
`weights_sha256`), the delta's chunks on `delta/0..` for a 120-byte packet, and the traps a device must
not fall into (adding the implicit zeros turns the `-0.0` weight into `+0.0`; a wrong base).
``test_golden_downlink.py`` checks that the code still writes every byte and that applying the delta to
the base gives the recorded weights bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.aggregator.core.downlink import DownlinkCompressor
from fmfl.protocol import GlobalModel, Topics, UpdateEncoder, split_message

RUN = 1767225600000  # 2026-01-01T00:00:00Z in Unix milliseconds, as in golden_1_2.json
# Version 11 held by devices; index 9 is -0.0 and is not among the sent indices.
BASE = [0.5, -0.25, 1.0, 2.0, -3.0, 0.125, 0.75, -1.5, 4.0, -0.0, 0.0625, -0.5]
# What the aggregation rule produced for version 12 (float32).
CANDIDATE = [0.5, -0.2, 1.0, 2.3, -3.0, 0.1, 0.75, -1.6, 4.0, -0.0, 0.0625, -0.45]
CHAIN = "topk:0.5+int8+ef"
PACKET = 120


def vectors() -> dict[str, Any]:
    topics = Topics("default")
    base = np.array(BASE, dtype=np.float32)
    candidate = np.array(CANDIDATE, dtype=np.float32)
    downlink = DownlinkCompressor(CHAIN, base.size)
    weights = downlink.rebase(base, 11, candidate)
    delta = downlink.delta
    assert delta is not None
    delta_message = GlobalModel(
        "b1", model_version=12, base_version=11, payload=delta.payload, run=RUN, weights_sha256=delta.weights_sha256
    )
    dense_message = GlobalModel(
        "b1", model_version=12, base_version=None, payload=UpdateEncoder("dense", base.size).encode(weights),
        run=RUN, weights_sha256=delta.weights_sha256,
    )  # fmt: skip
    wrong_base = base.copy()
    wrong_base[3] = np.float32(2.0625)
    all_zeros_added = base + np.zeros_like(base)  # the trap: -0.0 + 0.0 is +0.0
    all_zeros_added[delta_indices(delta.payload, base.size)] = weights[delta_indices(delta.payload, base.size)]
    return {
        "run": RUN,
        "chain": CHAIN,
        "base_version": 11,
        "base_f32_hex": base.astype("<f4").tobytes().hex(),
        "candidate_f32_hex": candidate.astype("<f4").tobytes().hex(),
        "model_version": 12,
        "weights_f32_hex": weights.astype("<f4").tobytes().hex(),
        "weights_sha256": delta.weights_sha256,
        "residual_f64_hex": downlink.residual.astype("<f8").tobytes().hex(),
        "delta_payload_hex": delta.payload.hex(),
        "delta_message_hex": delta_message.to_bytes().hex(),
        "max_packet_bytes": PACKET,
        "delta_packets": [
            {"topic": topics.global_delta_chunk(i), "hex": p.hex()}
            for i, p in enumerate(split_message(delta_message.to_bytes(), PACKET, run=RUN))
        ],
        "dense_message_hex": dense_message.to_bytes().hex(),
        "wrong_base_f32_hex": wrong_base.astype("<f4").tobytes().hex(),
        "zeros_added_everywhere_f32_hex": all_zeros_added.astype("<f4").tobytes().hex(),
    }


def delta_indices(payload: bytes, size: int) -> list[int]:
    from fmfl.protocol import Limits, decode_update

    return decode_update(payload, size, Limits.for_vector_size(size)).indices.tolist()


def main() -> None:
    out = Path(__file__).with_name("golden_downlink.json")
    out.write_text(json.dumps(vectors(), indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

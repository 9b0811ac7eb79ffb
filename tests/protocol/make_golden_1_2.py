"""Regenerate tests/protocol/golden_1_2.json, the protocol 1.2 golden vectors (run by hand; tests never run it).

    .venv/bin/python tests/protocol/make_golden_1_2.py

One vector per rule that decides bytes and that 1.1 left to guesswork (docs/protocol.md section 9, "1.2"):
top-k ties, the precision of the int8 scale and quotient, the grouping of global-model chunks, the run
identity (run-tagged message ids, the run key) and the compact update. ``test_golden_1_2.py`` checks that
the code still writes every byte and that the bytes decode to the recorded values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.protocol import Ack, ClientUpdate, GlobalModel, RoundTask, Topics, UpdateEncoder, split_message

RUN = 1767225600000  # 2026-01-01T00:00:00Z in Unix milliseconds
TIES = [0.5, -0.5, 0.25, 0.5, -0.25, 0.25, 0.0, 0.5]
# Found by search: float32 arithmetic (scale = f32(max) / f32(127), v / s in f32) codes value 1 as 102,
# the normative binary64 arithmetic as 101.
INT8_PRECISION = [0.013853505253791809, 9.023167610168457, -11.290071487426758, 2.43426775932312]
CHUNK_WEIGHTS = [0.5, -0.25, 1.0, 2.0, -3.0, 0.125, 0.75, -1.5, 4.0, 0.0, 0.0625, -0.5]
CHUNK_PACKET = 120  # small on purpose: the 12-float model goes out in 4 chunks


def payload_vector(name: str, values: list[float], chain: str) -> dict[str, Any]:
    delta = np.array(values, dtype=np.float32)
    payload, sent = UpdateEncoder(chain, delta.size, seed=7).encode_sparse(delta, seed=1234)
    return {
        "name": name,
        "input": values,
        "chain": chain,
        "payload_hex": payload.hex(),
        "indices": sent.indices.tolist(),
        "values_f32_hex": sent.values.astype("<f4").tobytes().hex(),
    }


def messages() -> dict[str, Any]:
    topics = Topics("default")
    task = RoundTask(
        federation="default", bundle_id="b1", round=12, model_version=11, selected=("dev-1", "dev-2"),
        batch_size=16, lr=0.01, codec="topk:0.01+int8+ef", deadline=1767225900.0, seed=42, local_epochs=1,
        run=RUN,
    )  # fmt: skip
    weights = np.array(CHUNK_WEIGHTS, dtype=np.float32)
    model = GlobalModel(
        bundle_id="b1", model_version=11, base_version=None,
        payload=UpdateEncoder("dense", weights.size).encode(weights), run=RUN,
    )  # fmt: skip
    model_bytes = model.to_bytes()
    ack = Ack(
        "dev-1", round=12, update_id="00112233445566778899aabbccddeeff", accepted=False, reason="wrong_version",
        detail="model_version 10, round 12 trains version 11", run=RUN,
    )  # fmt: skip
    update = ClientUpdate(
        federation="default", bundle_id="b1", round=12, model_version=11, client_id="dev-1", num_samples=480,
        update_id="00112233445566778899aabbccddeeff", payload=bytes.fromhex("0102"),
        metrics={"train_loss": 0.5, "eval_accuracy": 0.75, "my_metric": -1.0}, run=RUN,
    )  # fmt: skip
    signed = ClientUpdate(
        **{**update.__dict__, "nonce": "ffeeddccbbaa99887766554433221100", "signature": bytes(range(64))}
    )
    return {
        "task": {
            "topic": topics.task,
            "message_hex": task.to_bytes().hex(),
            "packets_hex": [p.hex() for p in split_message(task.to_bytes(), run=RUN)],
        },
        "global_model": {
            "weights": CHUNK_WEIGHTS,
            "max_packet_bytes": CHUNK_PACKET,
            "message_hex": model_bytes.hex(),
            "packets": [
                {"topic": topics.global_model_chunk(i), "hex": p.hex()}
                for i, p in enumerate(split_message(model_bytes, CHUNK_PACKET, run=RUN))
            ],
        },
        "ack": {
            "message_hex": ack.to_bytes().hex(),
            "packets_hex": [p.hex() for p in split_message(ack.to_bytes(), run=RUN)],
        },
        "compact_update": {
            "topic": topics.update("dev-1"),
            "packet_hex": update.to_compact_bytes().hex(),
            "json_form_hex": update.to_bytes().hex(),
        },
        "compact_signed_update": {"topic": topics.update("dev-1"), "packet_hex": signed.to_compact_bytes().hex()},
    }


def main() -> None:
    golden = {
        "run": RUN,
        "payloads": [
            payload_vector("ties_top2", TIES, "topk:2"),
            payload_vector("ties_top5", TIES, "topk:5"),
            payload_vector("ties_top3_int8", TIES, "topk:3+int8"),
            payload_vector("int8_binary64", INT8_PRECISION, "int8"),
        ],
        "messages": messages(),
    }
    out = Path(__file__).with_name("golden_1_2.json")
    out.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

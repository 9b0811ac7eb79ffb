"""Protocol 1.2 golden vectors (golden_1_2.json, made by make_golden_1_2.py): the code still writes these
bytes, and the bytes decode to the recorded values, for every rule 1.2 pins down (docs/protocol.md 9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmfl.protocol import (
    Ack,
    ClientUpdate,
    GlobalModel,
    Limits,
    Reassembler,
    RoundTask,
    Topics,
    decode_update,
    parse_chunk,
)
from fmfl.protocol.chunking import chunk_run
from protocol.make_golden_1_2 import messages, payload_vector  # the generator: tests/ is on sys.path

GOLDEN = json.loads(Path(__file__).with_name("golden_1_2.json").read_text())
RUN = GOLDEN["run"]
LIMITS = Limits.for_vector_size(64)


@pytest.mark.parametrize("vector", GOLDEN["payloads"], ids=lambda v: v["name"])
def test_payload_vectors_are_still_written_and_decode_to_their_values(vector: dict[str, Any]) -> None:
    # Execute
    again = payload_vector(vector["name"], vector["input"], vector["chain"])
    update = decode_update(bytes.fromhex(vector["payload_hex"]), len(vector["input"]), LIMITS)
    # Assert
    assert again == vector
    assert update.indices.tolist() == vector["indices"]
    assert update.values.astype("<f4").tobytes().hex() == vector["values_f32_hex"]


def test_top_k_ties_go_to_the_higher_index() -> None:
    by_name = {v["name"]: v for v in GOLDEN["payloads"]}
    # |p| = 0.5 at 0, 1, 3, 7: two of them are 3 and 7; five take all four and 0.25 at 5 (not 2 or 4).
    assert by_name["ties_top2"]["indices"] == [3, 7]
    assert by_name["ties_top5"]["indices"] == [0, 1, 3, 5, 7]


def test_int8_codes_use_binary64_division_not_float32() -> None:
    vector = next(v for v in GOLDEN["payloads"] if v["name"] == "int8_binary64")
    codes = bytes.fromhex(vector["payload_hex"])[-4:]
    values = np.array(vector["input"], dtype=np.float32)
    scale = np.float32(np.max(np.abs(values.astype(np.float64))) / 127)
    f32_code = int(np.rint(values[1] / np.float32(np.float32(np.max(np.abs(values))) / np.float32(127))))
    assert np.frombuffer(codes, dtype=np.int8).tolist() == [0, 101, -127, 27]
    assert int(np.rint(np.float64(values[1]) / np.float64(scale))) == 101
    assert f32_code == 102


def test_message_vectors_are_still_written() -> None:
    assert messages() == GOLDEN["messages"]


def test_global_model_chunks_group_by_stream_not_by_topic() -> None:
    # Prepare: the chunks arrive on global/0..3, in reverse order, beside a stale chunk of an older run.
    vector = GOLDEN["messages"]["global_model"]
    topics = Topics("default")
    reassembler = Reassembler(1 << 20)
    out = []
    # Execute: the grouping key is the topic without its chunk level ("global"), plus the message id.
    for packet in reversed(vector["packets"]):
        kind, index = topics.parse(packet["topic"])
        chunk = parse_chunk(bytes.fromhex(packet["hex"]))
        assert kind == "global"
        assert int(index or -1) == chunk.index
        assert chunk.run == RUN
        out.append(reassembler.add(bytes.fromhex(packet["hex"]), source=kind))
    # Assert
    assert out[:-1] == [None] * (len(out) - 1)
    model = GlobalModel.from_bytes(out[-1] or b"", LIMITS)
    assert out[-1] == bytes.fromhex(vector["message_hex"])
    assert model.run == RUN
    assert model.model_version == 11
    assert decode_update(model.payload, 12, LIMITS).to_dense().tolist() == vector["weights"]


def test_run_identity_is_in_every_gateway_message_and_chunk() -> None:
    m = GOLDEN["messages"]
    task = RoundTask.from_bytes(bytes.fromhex(m["task"]["message_hex"]), LIMITS)
    ack = Ack.from_bytes(bytes.fromhex(m["ack"]["message_hex"]), LIMITS)
    assert task.run == ack.run == RUN
    assert ack.detail == "model_version 10, round 12 trains version 11"
    for hexes in (m["task"]["packets_hex"], m["ack"]["packets_hex"]):
        packet = bytes.fromhex(hexes[0])
        assert packet[5] == 1
        assert chunk_run(packet) == RUN
        assert packet[8:16] == RUN.to_bytes(8, "little")


@pytest.mark.parametrize("name", ["compact_update", "compact_signed_update"])
def test_compact_update_is_a_bare_frame_that_decodes_with_its_topic(name: str) -> None:
    vector = GOLDEN["messages"][name]
    packet = bytes.fromhex(vector["packet_hex"])
    # Execute: a bare frame passes the reassembler unchanged; the topic supplies federation and client.
    data = Reassembler(1 << 20).add(packet, source=vector["topic"])
    update = ClientUpdate.decode(data or b"", LIMITS, federation="default", client_id="dev-1", bundle_id="b1")
    # Assert
    assert data == packet
    assert packet[:4] == b"FMFL"
    assert packet[7] == 1
    assert (update.run, update.round, update.model_version, update.num_samples) == (RUN, 12, 11, 480)
    assert update.metrics == {"train_loss": 0.5, "eval_accuracy": 0.75, "my_metric": -1.0}
    assert update.payload == b"\x01\x02"
    if name == "compact_signed_update":
        assert update.nonce == "ffeeddccbbaa99887766554433221100"
        assert update.signature == bytes(range(64))
        assert len(packet) == 87 + 16 + 64
    else:
        assert len(packet) == 87
        assert len(vector["json_form_hex"]) // 2 == 265

"""Coverage-guided fuzzing of every protocol decoder with atheris (libFuzzer for Python). Optional.

    .venv/bin/pip install atheris
    .venv/bin/python -m benchmarks.fuzz_protocol -atheris_runs=1000000 -rss_limit_mb=1024

The first input byte picks the target (update payload, framed message, chunk, reassembler, codec spec, and
a message or chunk whose CRC-32 the harness repairs first, so that mutations reach past the checksum; for
protocol 1.2 also a ClientUpdate in either form read with its topic's context (compact binary metadata),
the gateway's update-id salvage of a broken update, and the run hint of a chunk header);
the rest is the input (for update payloads: a u16 vector size, then the payload). A target may only return
or raise ProtocolError; anything else, a decoded update that breaks its invariants, or memory beyond the
limit is a crash that libFuzzer reports with the input.
Seeds: the golden vectors and one valid message of each type, written to a corpus directory first.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["fmfl.protocol"]):
    from fmfl.protocol import (
        Ack,
        ClientHello,
        ClientStatus,
        ClientUpdate,
        CodecSpec,
        GlobalModel,
        Limits,
        ProtocolError,
        Reassembler,
        RoundTask,
        UpdateEncoder,
        decode_message,
        decode_update,
        parse_chunk,
        split_message,
    )
    from fmfl.protocol.chunking import chunk_run
    from fmfl.protocol.messages import salvage_update_id

MAX_SIZE = 65535  # the update target reads the vector size from 2 input bytes
LIMITS = Limits.for_vector_size(MAX_SIZE)
REASSEMBLER = Reassembler(max_total_bytes=1 << 20, max_pending_messages=8)
TARGETS = 9
CONTEXT = {"federation": "f", "client_id": "dev-1", "bundle_id": "b"}


def _with_crc(body: bytes) -> bytes:
    if len(body) < 4:
        return body
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[0] % TARGETS, data[1:]
    try:
        if target == 0:
            if len(body) < 2:
                return
            size = max(1, struct.unpack_from("<H", body)[0])
            update = decode_update(body[2:], size, LIMITS)
            assert update.indices.dtype == np.int64
            assert update.values.dtype == np.float32
            assert update.indices.size == update.values.size <= size
            assert update.nnz == 0 or (update.indices[0] >= 0 and update.indices[-1] < size)
            assert np.all(np.diff(update.indices) > 0)
            assert np.isfinite(update.values).all()
        elif target == 1:
            decode_message(body, LIMITS)
        elif target == 2:
            parse_chunk(body, 1 << 20)
        elif target == 3:
            REASSEMBLER.add(body)
            assert REASSEMBLER.reserved_bytes <= REASSEMBLER.max_total_bytes
        elif target == 4:
            spec = CodecSpec.parse(body.decode("utf-8", "replace"))
            assert CodecSpec.parse(str(spec)) == spec
        elif target == 5:
            decode_message(_with_crc(body), LIMITS)
        elif target == 6:
            REASSEMBLER.add(_with_crc(body))
            assert REASSEMBLER.reserved_bytes <= REASSEMBLER.max_total_bytes
        elif target == 7:
            update = ClientUpdate.decode(_with_crc(body), LIMITS, **CONTEXT)
            assert update.run is None or update.run >= 1
            assert update.num_samples >= 0
            assert len(update.update_id) <= 64
        else:
            repaired = _with_crc(body)
            run = chunk_run(body)
            assert run is None or 0 <= run < 2**64
            salvaged = salvage_update_id(repaired, LIMITS)
            if salvaged is not None:
                assert 1 <= len(salvaged[0]) <= 64
                assert 0 <= salvaged[1] < 2**53
    except ProtocolError:
        pass


def write_seeds(directory: Path) -> None:
    golden = json.loads((Path(__file__).parents[1] / "tests/protocol/golden_vectors.json").read_text())
    seeds = [
        b"\x00" + struct.pack("<H", len(golden["inputs"][v["input"]])) + bytes.fromhex(v["payload_hex"])
        for v in golden["vectors"]
    ]
    rng = np.random.default_rng(0)
    delta = rng.standard_normal(1000).astype(np.float32)
    for chain in ("topk:0.01+int8+ef", "topk:0.3+int4", "randk:0.05+sign", "int8:per_tensor", "fp16+zstd"):
        seeds.append(b"\x00" + struct.pack("<H", 1000) + UpdateEncoder(chain, 1000, [600, 400]).encode(delta))
    payload = UpdateEncoder("topk:0.01+int8", 1000).encode(delta)
    messages = [
        ClientHello("dev-1", {"cores": 4, "eps": ["CPU"]}, bundle_id="b", model_version=1),
        ClientStatus("dev-1", online=False),
        RoundTask(
            federation="f",
            bundle_id="b",
            round=1,
            model_version=1,
            selected=("dev-1",),
            batch_size=8,
            lr=0.1,
            codec="topk:0.01+int8+ef",
            deadline=1.0,
            seed=3,
            local_steps=5,
        ),
        GlobalModel("b", model_version=2, base_version=1, payload=payload),
        ClientUpdate(
            federation="f",
            bundle_id="b",
            round=1,
            model_version=1,
            client_id="dev-1",
            num_samples=10,
            update_id="u1",
            payload=payload,
            metrics={"loss": 0.5},
        ),
        Ack("dev-1", round=1, update_id="u1", accepted=False, reason="late"),
    ]
    run = 1767225600000
    update = messages[4]
    assert isinstance(update, ClientUpdate)
    compact = ClientUpdate(**{**update.__dict__, "update_id": "ab" * 16, "run": run,
                              "metrics": {"train_loss": 0.5, "custom": 1.0}})  # fmt: skip
    signed = ClientUpdate(**{**compact.__dict__, "nonce": "cd" * 16, "signature": bytes(64)})
    for c in (compact, signed):
        seeds += [b"\x07" + c.to_compact_bytes(), b"\x08" + c.to_compact_bytes(), b"\x06" + c.to_compact_bytes()]
    seeds += [b"\x07" + update.to_bytes(), b"\x08" + update.to_bytes()]
    seeds += [b"\x08" + chunk for chunk in split_message(compact.to_bytes(), 300, run=run)]
    for message in messages:
        data = message.to_bytes()
        seeds.append(b"\x01" + data)
        seeds.append(b"\x05" + data)
        seeds.extend(b"\x06" + chunk for chunk in split_message(data, 300))
        seeds.extend(b"\x02" + chunk for chunk in split_message(data, 300)[:2])
        seeds.extend(b"\x03" + chunk for chunk in split_message(data, 300))
    seeds.extend(b"\x04" + s.encode() for s in ("topk:0.01+int8+ef", "randk:5+sign:block=8,sr+zstd:level=9"))
    directory.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(seeds):
        (directory / f"seed-{number:03d}").write_bytes(seed)


def main() -> None:
    corpus = Path(os.environ.get("FMFL_FUZZ_CORPUS", Path(tempfile.gettempdir()) / "fmfl-fuzz-corpus"))
    write_seeds(corpus)
    atheris.Setup([*sys.argv, str(corpus)], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

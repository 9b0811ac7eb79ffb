"""The web device's messages against the Python reference (fmfl.protocol): random messages of every type
written by the reference are read by the JS decoder to the same fields and written back byte for byte (so the
browser's frames, JSON float forms and escapes are the reference's), and frames with broken headers or metadata
are refused with the reference's reason."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from support.web_protocol_cases import BUNDLE_CHARS, random_float, random_id, random_spec, random_text
from support.web_protocol_node import run_protocol_js

from fmfl.protocol import (
    Ack,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    GlobalModel,
    Limits,
    ProtocolError,
    RoundTask,
    decode_message,
)
from fmfl.protocol.codec import CodecSpec

LIMITS = Limits.for_vector_size(1000)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def reference_fields(message: Any) -> dict[str, Any]:
    """A message's fields as the JS decoder names them (camelCase), bytes as hex."""
    out = {}
    for key, value in asdict(message).items():
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, tuple):
            value = list(value)
        out["detail" if key == "detail" else _camel(key)] = value
    return out


def same(have: Any, want: Any) -> bool:
    """``have`` (from JSON written by JS) equals ``want``, numbers compared as numbers: JSON.stringify writes
    2.5e19 as 25000000000000000000, which Python reads as an int."""
    if isinstance(want, float) and not isinstance(want, bool):
        return isinstance(have, int | float) and not isinstance(have, bool) and float(have) == want
    if isinstance(want, dict):
        return isinstance(have, dict) and have.keys() == want.keys() and all(same(have[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(same, have, want))
    return bool(have == want) and type(have) is type(want)


def random_messages(seed: int, count: int) -> list[tuple[str, Any]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, Any]] = []
    for _ in range(count):
        run = None if rng.random() < 0.3 else int(rng.integers(1, 2**53))
        kind = int(rng.integers(6))
        if kind == 0:
            caps: dict[str, Any] = {}
            for i in range(int(rng.integers(0, 6))):
                pick = int(rng.integers(5))
                choices = [random_text(rng), int(rng.integers(-(2**53) + 1, 2**53)), random_float(rng),
                           bool(rng.integers(2)), [random_text(rng) for _ in range(int(rng.integers(3)))]]
                caps[f"cap_{i}"] = choices[pick]
            out.append(("hello", ClientHello(random_id(rng), caps,
                                             None if rng.random() < 0.3 else random_id(rng, BUNDLE_CHARS, 128),
                                             None if rng.random() < 0.3 else int(rng.integers(0, 2**53)))))
        elif kind == 1:
            out.append(("status", ClientStatus(random_id(rng), bool(rng.integers(2)))))
        elif kind == 2:
            steps = rng.random() < 0.5
            out.append(("task", RoundTask(
                federation=random_id(rng), bundle_id=random_id(rng, BUNDLE_CHARS, 128),
                round=int(rng.integers(0, 2**53)), model_version=int(rng.integers(0, 2**53)),
                selected=tuple(dict.fromkeys(random_id(rng) for _ in range(int(rng.integers(0, 6))))),
                batch_size=int(rng.integers(1, 512)), lr=abs(random_float(rng)) or 0.01, codec=random_spec(rng),
                deadline=abs(random_float(rng)), seed=int(rng.integers(0, 2**53)),
                local_steps=int(rng.integers(1, 100)) if steps else None,
                local_epochs=None if steps else int(rng.integers(1, 5)), run=run)))
        elif kind == 3:
            version = int(rng.integers(1, 2**53))
            base = None if rng.random() < 0.5 else int(rng.integers(0, version))
            digest = rng.bytes(32).hex() if rng.random() < 0.5 else None
            out.append(("global_model", GlobalModel(random_id(rng, BUNDLE_CHARS, 128), version, base,
                                                    rng.bytes(int(rng.integers(0, 200))), run=run,
                                                    weights_sha256=digest,
                                                    deltas=None if rng.random() < 0.4 else bool(rng.integers(2)))))
        elif kind == 4:
            accepted = bool(rng.integers(2))
            out.append(("ack", Ack(random_id(rng), int(rng.integers(0, 2**53)), random_id(rng), accepted,
                                   "" if accepted else "wrong_version", "" if accepted else random_text(rng), run)))
        else:
            signed = rng.random() < 0.4
            hex_id = rng.random() < 0.8
            metrics = {name: random_float(rng) for name in rng.choice(
                ["train_loss", "train_seconds", "steps", "eval_loss", "eval_accuracy", "eval_samples", "my.metric-1",
                 "local_dp_epsilon"], size=int(rng.integers(0, 6)), replace=False)}
            out.append(("update", ClientUpdate(
                federation=random_id(rng), bundle_id=random_id(rng, BUNDLE_CHARS, 128),
                round=int(rng.integers(0, 2**53)), model_version=int(rng.integers(0, 2**53)), client_id=random_id(rng),
                num_samples=int(rng.integers(0, 2**53)),
                update_id=rng.bytes(16).hex() if hex_id else random_id(rng),
                payload=rng.bytes(int(rng.integers(0, 60))),
                metrics=metrics, nonce=rng.bytes(16).hex() if signed else None,
                signature=rng.bytes(64) if signed else None, run=run)))
    return out


ROUND_TRIP = """
const limits = P.Limits.forVectorSize(1000);
const plain = (v) => (v instanceof P.PyFloat ? v.value : v instanceof Uint8Array ? hex(v) : v);
const fields = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k,
  v && typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v) && !(v instanceof P.PyFloat)
    ? Object.fromEntries(Object.entries(v).map(([a, b]) => [a, plain(b)])) : plain(v)]));
const encoders = { hello: P.encodeHello, status: P.encodeStatus, task: P.encodeTask, global_model: P.encodeGlobalModel,
                   ack: P.encodeAck };
output(input.map((c) => attempt(() => {
  const bytes = unhex(c.wire);
  if (c.kind === "update") {
    const m = P.decodeUpdate(bytes, limits, c.context);
    return { fields: fields(m), json: hex(P.encodeUpdate(m, { compact: false })),
             compact: P.compactOk(m) ? hex(P.encodeUpdate(m, { compact: true })) : null, wire: hex(P.encodeUpdate(m)) };
  }
  const { type, message } = P.decodeMessage(bytes, limits);
  return { type, fields: fields(message), again: hex(encoders[type](message)) };
})));
"""


def test_js_reads_random_reference_messages_and_writes_them_back_byte_for_byte() -> None:
    # Prepare: 300 random messages of all six types with run, detail, signatures, odd floats and escapes.
    messages = random_messages(seed=31, count=300)
    cases = []
    for kind, message in messages:
        if kind == "update":
            wire = message.wire_bytes()  # compact when the update can use it, as a 1.2 device sends
            context = {"federation": message.federation, "clientId": message.client_id, "bundleId": message.bundle_id}
            cases.append({"kind": kind, "wire": wire.hex(), "context": context})
        else:
            cases.append({"kind": kind, "wire": message.to_bytes().hex()})
    # Execute
    results = run_protocol_js(ROUND_TRIP, cases)
    # Assert
    kinds = set()
    for (kind, message), got in zip(messages, results, strict=True):
        assert "ok" in got, (kind, message, got)
        have = got["ok"]
        want = reference_fields(message)
        if kind == "update":
            want["signature"] = want["signature"] or None
            assert same(have["fields"], want), (have["fields"], want)
            assert have["json"] == message.to_bytes().hex()
            assert have["wire"] == message.wire_bytes().hex()
            assert have["compact"] == (message.to_compact_bytes().hex() if message.compact_ok else None)
        else:
            assert have["type"] == kind, (kind, have["fields"], want)
            assert same(have["fields"], want), (kind, have["fields"], want)
            assert have["again"] == message.to_bytes().hex(), kind
        kinds.add(kind + ("-compact" if kind == "update" and message.compact_ok else ""))
    assert kinds == {"hello", "status", "task", "global_model", "ack", "update", "update-compact"}


def _frame(type_code: int, meta: bytes, payload: bytes = b"", *, flags: int = 0, major: int = 1,
           minor: int = 2) -> bytes:
    body = struct.pack("<4sBBBBII", b"FMFL", major, minor, type_code, flags, len(meta), len(payload)) + meta + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _task_json(**changes: Any) -> dict[str, Any]:
    task = {"federation": "f", "bundle_id": "b", "round": 3, "model_version": 2, "selected": ["a", "b"],
            "batch_size": 8, "lr": 0.1, "codec": "topk:0.01+int8+ef", "deadline": 5.0, "seed": 1,
            "local_steps": 1, "local_epochs": None, "run": 7}
    task.update(changes)
    return task


def bad_frames() -> list[bytes]:
    """Frames that break section 4 or 5 in one way each (plus a few valid ones that look odd)."""
    dumps = json.dumps
    good = dumps(_task_json()).encode()
    frames = [
        _frame(3, good), _frame(3, good, minor=9), _frame(3, b" \n" + good + b"\t"),  # valid
        _frame(3, good)[:-1], _frame(3, good) + b"\x00", _frame(3, good)[:19],
        b"FMFX" + _frame(3, good)[4:], _frame(3, good, major=2), _frame(7, good), _frame(0, good),
        _frame(3, good, flags=2), _frame(3, good, flags=1), _frame(3, good, b"\x01"),
        _frame(3, good)[:-4] + b"\x00\x00\x00\x00",
        _frame(3, b"\xef\xbb\xbf" + good), _frame(3, b"\xff" + good), _frame(3, b"[1]"), _frame(3, b"{}"),
        _frame(3, good[:-1] + b',"round":4}'),  # duplicate key
        _frame(3, b"{" + b"[" * 3000 + b"]" * 3000 + b"}"),
        _frame(3, b'{"a": NaN}'), _frame(3, b'{"a": Infinity}'), _frame(3, b'{"a": 1e400}'),
        _frame(3, b'{"a": ' + b"9" * 4301 + b"}"), _frame(3, b'{"a": ' + b"9" * 4300 + b"}"),
        _frame(3, b'{"a": "\x01"}'), _frame(3, b'{"a": "\\ud800"}'), _frame(3, b'{"a": 01}'), _frame(3, b'{"a": -}'),
        _frame(3, b'{"a": 1.}'), _frame(3, b'{"a": .5}'), _frame(3, b'{"a": "\\x"}'), _frame(3, b"{'a': 1}"),
        _frame(1, dumps({"client_id": "c", "capabilities": {"n": 2**53}}).encode()),
        _frame(1, dumps({"client_id": "c", "capabilities": {"bad key": 1}}).encode()),
        _frame(1, dumps({"client_id": "c", "capabilities": {"x": {"y": 1}}}).encode()),
        _frame(1, dumps({"client_id": "c", "capabilities": {"x": [1]}}).encode()),
        _frame(1, dumps({"client_id": "c", "capabilities": {"x": "\u00e9" * 129}}).encode()),
        _frame(2, dumps({"client_id": "c", "online": 1}).encode()),
        _frame(2, dumps({"client_id": "-c", "online": True}).encode()),
        _frame(2, dumps({"client_id": "c/d", "online": True}).encode()),
        _frame(2, dumps({"client_id": "c" * 65, "online": True}).encode()),
        _frame(2, dumps({"client_id": "c", "online": True}).encode(), b"\x01"),
        _frame(4, dumps({"bundle_id": "b", "model_version": 3, "base_version": 3}).encode()),
        _frame(4, dumps({"bundle_id": "b", "model_version": 3, "base_version": None, "run": 0}).encode(), b"\x01"),
        *[_frame(4, dumps({"bundle_id": "b", "model_version": 3, "base_version": 2, "weights_sha256": digest}).encode())
          for digest in ("AB" * 32, "ab" * 31, 5, "ab" * 32)],
        *[_frame(4, dumps({"bundle_id": "b", "model_version": 3, "base_version": None, "deltas": flag}).encode())
          for flag in (True, False, None, 1, "true")],
        _frame(6, dumps({"client_id": "c", "round": 1, "update_id": "u", "accepted": False,
                         "reason": "x" * 257}).encode()),
        _frame(6, dumps({"client_id": "c", "round": 1, "update_id": "u", "accepted": False, "reason": "r",
                         "detail": "\U0001f600" * 65}).encode()),
        _frame(5, dumps({"federation": "f", "bundle_id": "b", "round": 1, "model_version": 0, "client_id": "c",
                         "num_samples": 1.5, "update_id": "u", "metrics": {}}).encode()),
        _frame(5, dumps({"federation": "f", "bundle_id": "b", "round": 1, "model_version": 0, "client_id": "c",
                         "num_samples": 1, "update_id": "u", "metrics": {"m": True}}).encode()),
        _frame(5, dumps({"federation": "f", "bundle_id": "b", "round": 1, "model_version": 0, "client_id": "c",
                         "num_samples": 1, "update_id": "u", "metrics": {}, "sig": "AAAA"}).encode()),
        _frame(5, dumps({"federation": "f", "bundle_id": "b", "round": 1, "model_version": 0, "client_id": "c",
                         "num_samples": 1, "update_id": "u", "metrics": {}, "nonce": "0" * 32, "sig": "A" * 86 + "=="}
                        ).encode()),
        _frame(5, dumps({"federation": "f", "bundle_id": "b", "round": 1, "model_version": 0, "client_id": "c",
                         "num_samples": 1, "update_id": "u", "metrics": {}, "nonce": "0" * 32, "sig": "A" * 85 + "="}
                        ).encode()),
        _frame(5, dumps({"federation": "f", "bundle_id": "b", "round": 1, "model_version": 0, "client_id": "c",
                         "num_samples": 1, "update_id": "u", "metrics": {}, "nonce": "ABCD" * 8}).encode()),
        _frame(5, b"\x01\x00\x00\x00" + b"\x00" * 16 + b"\x00\x00", flags=1),  # compact: needs its context
    ]
    for key, value in [("round", 1.0), ("round", True), ("round", -1), ("round", 2**53), ("round", 2**53 - 1),
                       ("lr", 0), ("lr", "0.1"), ("lr", 1), ("deadline", -1.0), ("selected", ["a", "a"]),
                       ("selected", "a"), ("selected", ["a"] * 10_001), ("codec", "topk:2+topk:3"),
                       ("codec", "x" * 300),
                       ("local_epochs", 1), ("local_steps", None), ("local_steps", 0), ("batch_size", 0),
                       ("federation", "a b"), ("bundle_id", "b+="), ("bundle_id", "+b"), ("run", 0), ("run", None),
                       ("seed", 2**60), ("model_version", None)]:
        frames.append(_frame(3, dumps(_task_json(**{key: value})).encode()))
    task = _task_json()
    del task["round"]
    frames.append(_frame(3, dumps(task).encode()))
    return frames


def _reference_verdict(data: bytes) -> dict[str, Any]:
    try:
        message = decode_message(data, LIMITS)
    except ProtocolError as error:
        return {"error": str(error.reason)}
    return {"ok": type(message).__name__}


VERDICTS = """
const limits = P.Limits.forVectorSize(1000);
const names = { hello: "ClientHello", status: "ClientStatus", task: "RoundTask", global_model: "GlobalModel",
                update: "ClientUpdate", ack: "Ack" };
output(input.map((h) => { const r = attempt(() => names[P.decodeMessage(unhex(h), limits).type]);
  return "ok" in r || "crash" in r ? r : { error: r.error, has_message: r.message.length > r.error.length + 2 }; }));
"""


def test_js_refuses_broken_frames_and_metadata_with_the_reference_reason() -> None:
    # Prepare
    frames = bad_frames()
    # Execute
    got = run_protocol_js(VERDICTS, [f.hex() for f in frames])
    # Assert: the same verdict for every frame, and every refusal says what was wrong.
    for data, have in zip(frames, got, strict=True):
        want = _reference_verdict(data)
        if "error" in want:
            assert have == {"error": want["error"], "has_message": True}, (data[:120], have, want)
        else:
            assert have == want, (data[:120], have, want)
    verdicts = [_reference_verdict(f) for f in frames]
    assert sum("ok" in v for v in verdicts) >= 5
    reasons = {v["error"] for v in verdicts if "error" in v}
    assert reasons >= {"truncated", "trailing_bytes", "bad_magic", "version", "checksum", "unknown_type",
                       "bad_metadata", "invalid_id", "too_large", "bad_codec_spec"}


SPECS = """
output(input.map((t) => {
  const r = attempt(() => P.codecSpecToString(P.parseCodecSpec(t)));
  return r.ok ?? r.error;
}));
"""


def test_codec_spec_parser_accepts_and_prints_exactly_what_the_reference_does() -> None:
    # Prepare: random valid chains, the same with one character inserted, removed or replaced, and edge cases.
    rng = np.random.default_rng(11)
    alphabet = "topkrandk:0.1,per_tensor+int8int4signsrblock=zstdlevel=efdensefp16fp32 e-E.9"
    texts = []
    for _ in range(400):
        spec = random_spec(rng)
        texts.append(spec)
        at = int(rng.integers(len(spec) + 1))
        char = alphabet[int(rng.integers(len(alphabet)))]
        texts += [spec[:at] + char + spec[at:], spec[:at] + spec[at + 1:], spec[:at] + char + spec[at + 1:]]
    texts += ["topk:1.", "topk:.5", "topk:1e-3", "topk:1E2", "topk:1e+2", "topk:0", "topk:1.5", "topk:01",
              "topk:0.00", "topk:1e-400", "topk:9999999999", "topk:99999999999", "int8:block=0",
              "int8:block=2147483648",
              "zstd:level=23", "zstd:level=0", "zstd:level=3", "zstd:level=03", " topk:0.1 ", "\x1ctopk:0.1\x85",
              "\ufefftopk:0.1", "topk:0.1,per_tensor+int8:per_tensor", "int8:per_tensor,block=4", "sign:sr",
              "fp16:sr", "int4:sr,sr", "", "+", "dense+", "ef+ef", "randk:5,per_tensor", "topk:0.5,per_tensor,x",
              "int8:", "zstd:", "TOPK:1", "topk:\u0661", "x" * 257, "ef+zstd+int4:block=7,sr+randk:0.3"]
    # Execute
    got = run_protocol_js(SPECS, texts)
    # Assert
    for text, have in zip(texts, got, strict=True):
        try:
            want = str(CodecSpec.parse(text))
        except ProtocolError as error:
            want = str(error.reason)
        assert have == want, text
    assert sum(g == "bad_codec_spec" for g in got) > 300
    assert sum(g != "bad_codec_spec" for g in got) > 400


HUGE_INTEGER_FLOAT = """
const limits = P.Limits.forVectorSize(10);
output(input.map((h) => attempt(() => P.decodeTask(unhex(h), limits))));
"""


def test_an_integer_too_large_for_a_double_in_a_float_field_is_non_finite() -> None:
    # JSON allows an integer literal of 401 digits where a float belongs (lr). It overflows a double: the
    # browser refuses it as non_finite, as the Python reference does.
    meta = json.dumps(_task_json()).replace('"lr": 0.1', '"lr": 1' + "0" * 400).encode()
    ok_meta = json.dumps(_task_json()).replace('"lr": 0.1', '"lr": 1' + "0" * 300).encode()
    got = run_protocol_js(HUGE_INTEGER_FLOAT, [_frame(3, meta).hex(), _frame(3, ok_meta).hex()])
    assert got[0]["error"] == "non_finite"
    assert "'lr' is not finite" in got[0]["message"]
    assert got[1]["ok"]["lr"] == 1e300
    with pytest.raises(ProtocolError, match="'lr' is not finite") as caught:
        RoundTask.from_bytes(_frame(3, meta), Limits.for_vector_size(10))
    assert caught.value.reason == "non_finite"


def test_metric_and_capability_names_that_are_javascript_object_keys_survive() -> None:
    # "__proto__" and "constructor" are legal map keys (section 5); a plain JS assignment would drop the first.
    odd = {"__proto__": 1.5, "constructor": 2.0, "toString": -3.0}
    update = ClientUpdate(federation="f", bundle_id="b", round=1, model_version=0, client_id="c", num_samples=2,
                          update_id="00112233445566778899aabbccddeeff", payload=b"\x01", metrics=odd, run=9)
    hello = ClientHello("c", {"__proto__": "x", "constructor": 4}, "b", None)
    cases = [{"kind": "update", "wire": update.to_compact_bytes().hex(),
              "context": {"federation": "f", "clientId": "c", "bundleId": "b"}},
             {"kind": "update", "wire": update.to_bytes().hex(), "context": {"federation": "f", "clientId": "c",
                                                                            "bundleId": "b"}},
             {"kind": "hello", "wire": hello.to_bytes().hex()}]
    got = run_protocol_js(ROUND_TRIP, cases)
    assert got[0]["ok"]["fields"]["metrics"] == odd
    assert got[0]["ok"]["compact"] == update.to_compact_bytes().hex()
    assert got[1]["ok"]["fields"]["metrics"] == odd
    assert got[1]["ok"]["json"] == update.to_bytes().hex()
    assert got[2]["ok"]["again"] == hello.to_bytes().hex()

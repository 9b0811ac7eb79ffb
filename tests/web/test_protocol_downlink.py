"""Downlink deltas on the web device (docs/protocol.md section 2b) through its JavaScript protocol, in node: the
golden delta's chunks on delta/0..4 reassemble (grouped by ".../delta"), apply to version 11 bit for bit with
the right weights_sha256, the dense copy gives the same bits, and the traps are refused with the held weights
unchanged; ModelFeed takes deltas and dense models, and holds global/+, exactly as the reference device's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from support.web_protocol_node import run_protocol_js

from fmfl.edge_client.model_feed import ModelFeed
from fmfl.protocol import GlobalModel, Limits, RoundTask, UpdateEncoder, decode_update
from fmfl.protocol.downlink import apply_sent, weights_sha256

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "golden_downlink.json").read_text())

APPLY = """
const g = input;
const t = P.topics("fmfl", "default");
const limits = P.Limits.forVectorSize(12);
const reassembler = new P.Reassembler(1 << 20);
const steps = g.delta_packets.slice().reverse().map((p) => reassembler.add(unhex(p.hex), t.source(p.topic)));
const delta = P.decodeGlobalModel(steps[steps.length - 1], limits);
const base = f32(g.base_f32_hex);
const baseBefore = f32hex(base);
const weights = P.applyDelta(base, delta, limits);
const dense = P.denseWeights(P.decodeGlobalModel(unhex(g.dense_message_hex), limits), 12, limits);
const wrong = f32(g.wrong_base_f32_hex);
const wrongBefore = f32hex(wrong);
const refused = attempt(() => P.applyDelta(wrong, delta, limits));
// A delta whose payload is for another size: the decoder's reason, base untouched.
const otherSize = attempt(() => P.applyDelta(new Float32Array(13), delta, P.Limits.forVectorSize(13)));
// The same dense model with a corrupted hash is refused too.
const denseModel = P.decodeGlobalModel(unhex(g.dense_message_hex), limits);
const badHash = P.makeGlobalModel({ ...denseModel, weightsSha256: "0".repeat(64) });
output({
  pending: steps.slice(0, -1), message: hex(steps[steps.length - 1]),
  delta: { modelVersion: delta.modelVersion, baseVersion: delta.baseVersion, run: delta.run, sha: delta.weightsSha256,
           payload: hex(delta.payload) },
  weights: f32hex(weights), sha: P.weightsSha256(weights), base_unchanged: f32hex(base) === baseBefore,
  dense: f32hex(dense), refused, wrong_unchanged: f32hex(wrong) === wrongBefore, other_size: otherSize,
  bad_hash: attempt(() => P.denseWeights(badHash, 12, limits)),
  kinds: g.delta_packets.map((p) => t.parse(p.topic)[0]), source: t.source(g.delta_packets[0].topic),
  encoded_again: hex(P.encodeGlobalModel(delta)),
});
"""


def test_golden_delta_applies_bit_for_bit_and_the_traps_are_refused() -> None:
    # Execute
    got = run_protocol_js(APPLY, GOLDEN)
    # Assert: the chunks fed last first make the delta message.
    assert got["pending"] == [None] * (len(GOLDEN["delta_packets"]) - 1)
    assert got["message"] == GOLDEN["delta_message_hex"] == got["encoded_again"]
    assert got["kinds"] == ["delta"] * len(GOLDEN["delta_packets"])
    assert got["source"] == "fmfl/default/delta"
    assert got["delta"] == {"modelVersion": 12, "baseVersion": 11, "run": GOLDEN["run"],
                            "sha": GOLDEN["weights_sha256"], "payload": GOLDEN["delta_payload_hex"]}
    # Version 12 bit for bit (index 9 keeps -0.0: not the zeros-added trap), with the gateway's hash.
    assert got["weights"] == GOLDEN["weights_f32_hex"] != GOLDEN["zeros_added_everywhere_f32_hex"]
    assert got["sha"] == GOLDEN["weights_sha256"]
    assert got["base_unchanged"]
    assert got["dense"] == GOLDEN["weights_f32_hex"]
    # A wrong base: hash_mismatch, and the held weights are unchanged.
    assert got["refused"]["error"] == "hash_mismatch"
    assert "global v12 from the delta from v11" in got["refused"]["message"]
    assert got["wrong_unchanged"]
    assert got["other_size"]["error"] == "size_mismatch"
    assert got["bad_hash"]["error"] == "hash_mismatch"
    assert "from dense" in got["bad_hash"]["message"]


FEED = """
const limits = P.Limits.forVectorSize(input.size);
output(input.streams.map((events) => {
  const feed = new P.ModelFeed({ weights: new Float32Array(input.size), limits });
  const follower = new P.RunFollower();
  return events.map((e) => {
    let outcome = null;
    if (e.kind === "reconnect") feed.reset();
    else {
      const before = follower.run;
      const bytes = unhex(e.message);
      const message = e.kind === "task" ? P.decodeTask(bytes, limits) : P.decodeGlobalModel(bytes, limits);
      if (!follower.follow(message.run)) outcome = "older_run";
      else {
        if (follower.run > before) feed.newRun();
        if (e.kind === "task") feed.onTask(message);
        else outcome = feed.onModel(message).outcome;
      }
    }
    return [[feed.wantsDense, feed.version, feed.run, feed.deltaRun, f32hex(feed.weights)], outcome];
  });
}));
"""


class _State:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.model_run: int | None = None
        self.delta_run: int | None = None

    def note_delta_run(self, run: int) -> None:
        self.delta_run = run


class _Device:
    """What ModelFeed uses of an EdgeDevice: the held model and the state's runs."""

    def __init__(self, root: Path, size: int) -> None:
        self.state = _State(root)
        self.initial = np.zeros(size, dtype=np.float32)
        self.version, self.weights = 0, self.initial.copy()

    def global_model(self) -> tuple[int, np.ndarray]:
        return self.version, self.weights

    def accept_global(self, version: int, weights: np.ndarray, run: int) -> None:
        self.version, self.weights, self.state.model_run = version, np.asarray(weights, dtype=np.float32), run


def _gateway_models(rng: np.random.Generator, size: int) -> dict[tuple[int, int], dict[str, Any]]:
    """Per (run, version): the weights and (from version 2) the delta from the previous version, as a
    re-basing gateway makes them: the delta's result is the version's weights, bit for bit."""
    models: dict[tuple[int, int], dict[str, Any]] = {}
    limits = Limits.for_vector_size(size)
    for run in (100, 200):
        weights = rng.normal(size=size).astype(np.float32)
        for version in range(1, 7):
            delta = None
            if version > 1:
                delta = UpdateEncoder("topk:0.5+int8", size).encode(rng.normal(size=size).astype(np.float32))
                weights = apply_sent(weights, decode_update(delta, size, limits))
            models[run, version] = {"weights": weights.copy(), "delta": delta}
    return models


def _events(rng: np.random.Generator, size: int) -> list[dict[str, Any]]:
    models = _gateway_models(rng, size)
    events: list[dict[str, Any]] = []
    run = 100
    for _ in range(60):
        if rng.random() < 0.08:
            run = 200
        # Now and then the other run's message, or one without a run (a 1.1 gateway's).
        msg_run: int | None = run if rng.random() < 0.85 else (300 - run if rng.random() < 0.5 else None)
        version = int(rng.integers(1, 7))
        pick = int(rng.integers(10))
        model = models[msg_run or 100, version]
        digest = "0" * 64 if rng.random() < 0.15 else weights_sha256(model["weights"])
        if pick == 0:
            events.append({"kind": "reconnect"})
        elif pick <= 3:
            task = RoundTask(federation="f", bundle_id="b", round=version, model_version=version, selected=("c",),
                             batch_size=2, lr=0.1, codec="dense", deadline=1e12, seed=1, local_steps=1, run=msg_run)
            events.append({"kind": "task", "message": task.to_bytes().hex()})
        elif pick <= 6 and model["delta"] is not None:
            gm = GlobalModel("b", version, version - 1, model["delta"], run=msg_run, weights_sha256=digest)
            events.append({"kind": "model", "message": gm.to_bytes().hex()})
        else:
            deltas = None if rng.random() < 0.2 else bool(rng.random() < 0.5)
            gm = GlobalModel("b", version, None, UpdateEncoder("dense", size).encode(model["weights"]), run=msg_run,
                             weights_sha256=None if rng.random() < 0.2 else digest, deltas=deltas)
            events.append({"kind": "model", "message": gm.to_bytes().hex()})
    return events


def _reference_states(events: list[dict[str, Any]], size: int, root: Path) -> list[list[Any]]:
    """The reference device's ModelFeed on a stand-in device, behind the runner's run rule (section 2a)."""
    device = _Device(root, size)
    limits = Limits.for_vector_size(size)
    feed = ModelFeed(device, limits)  # type: ignore[arg-type]
    followed = 0
    states: list[list[Any]] = []
    for e in events:
        if e["kind"] == "reconnect":
            feed.reset()
        else:
            data = bytes.fromhex(e["message"])
            kind = RoundTask if e["kind"] == "task" else GlobalModel
            message = kind.from_bytes(data, limits)
            run = message.run
            if run is None or run >= followed:  # the runner's rule: a message without a run always passes
                if run is not None and run > followed:
                    followed = run
                    feed.new_run()
                if isinstance(message, RoundTask):
                    feed.on_task(message)
                else:
                    feed.on_model(message)
        states.append([feed.wants_dense, device.version, device.state.model_run, device.state.delta_run,
                       device.weights.astype("<f4").tobytes().hex()])
    return states


def test_model_feed_takes_deltas_and_dense_models_as_the_reference_device(tmp_path: Path) -> None:
    # Prepare: 40 random streams of tasks, deltas and dense models (good, missing and wrong hashes, with and
    # without `deltas`) of two runs, with reconnects.
    rng = np.random.default_rng(17)
    size = 6
    streams = [_events(rng, size) for _ in range(40)]
    # Execute
    got = run_protocol_js(FEED, {"size": size, "streams": streams})
    # Assert: after every event, the same subscription, version, run, delta run and weights bit for bit.
    outcomes = set()
    for events, have in zip(streams, got, strict=True):
        assert [state for state, _ in have] == _reference_states(events, size, tmp_path)
        outcomes |= {outcome for _, outcome in have}
    assert outcomes >= {"delta", "dense", "ignored", "refused", "older_run"}

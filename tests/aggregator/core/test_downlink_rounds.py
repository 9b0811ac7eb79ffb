"""Downlink deltas end to end (docs/protocol.md 2b): the real gateway, real devices, a real Mosquitto.

``fmfl aggregator`` with its default downlink codec runs 50 rounds; three ``fmfl client`` processes (tiny
ViT, real Fashion-MNIST) take every version after the first as a delta, each checked against the
gateway's ``weights_sha256``, and receive one dense model only; a device built from the frozen 1.1 protocol
copy (it knows nothing of deltas) takes every dense model and trains each round beside them. Every version
the gateway stored is what the published deltas rebuild from version 0, byte for byte, and what each
device holds is the store's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.device_v11 import DeviceV11
from support.gateway_harness import AggregatorProcess, Listener, aggregator_args, bundle_info, read_metrics

from fmfl.aggregator.durable.store import GlobalStore
from fmfl.protocol import GlobalModel, Limits, Reassembler, Topics
from fmfl.protocol.downlink import apply_delta, weights_sha256

TOPICS = Topics("default")
ROUNDS = 50


def start_device(bundle: Path, data: Path, state: Path, url: str, client_id: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fmfl.cli", "-v", "client", "--bundle", str(bundle), "--data", str(data),
           "--state-dir", str(state), "--broker", url, "--client-id", client_id, "--rounds", str(ROUNDS)]
    log = (state.parent / f"{client_id}.log").open("wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def published_models(listener: Listener, limits: Limits) -> tuple[list[GlobalModel], list[GlobalModel]]:
    """(deltas, dense models) as complete messages, in publish order."""
    reassembler, deltas, dense = Reassembler(2**26, 16), [], []
    for topic, payload, _ in listener.snapshot():
        if not payload:
            continue
        kind, _ = TOPICS.parse(topic)
        data = reassembler.add(payload, source=kind)
        if data is not None:
            (deltas if kind == "delta" else dense).append(GlobalModel.from_bytes(data, limits))
    return deltas, dense


@pytest.mark.slow
def test_fifty_rounds_devices_on_deltas_and_a_1_1_device_hold_the_gateways_versions_bit_for_bit(
    mosquitto: Any, tiny_vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    # Prepare
    bundle_id, initial = bundle_info(tiny_vit_bundle)
    limits = Limits.for_vector_size(initial.size)
    listener = Listener(mosquitto.port, [TOPICS.global_delta, TOPICS.global_model])
    state = tmp_path / "gateway"
    agg = AggregatorProcess(tmp_path, aggregator_args(
        tiny_vit_bundle, mosquitto.port, state, rounds=ROUNDS, k=4, codec="topk:0.05+int8+ef",
        downlink_codec="topk:0.1+int8+ef", local_steps=1, over_select=1.0, round_timeout=60, start_timeout=120,
        selection_window=0,
    ))  # fmt: skip
    names = ("dev-0", "dev-1", "dev-2")
    folders = {n: tmp_path / n / "state" for n in names}
    for folder in folders.values():
        folder.parent.mkdir(parents=True)
    devices = [start_device(tiny_vit_bundle, fmnist_shard, folders[n], mosquitto.url, n) for n in names]
    old = DeviceV11(mosquitto.port, "old-1", bundle_id, initial)
    try:
        # Execute
        assert agg.wait(600) == 0, agg.stderr[-3000:]
        codes = [d.wait(120) for d in devices]
        time.sleep(0.5)  # the listener's last messages
    finally:
        for d in devices:
            if d.poll() is None:
                d.send_signal(signal.SIGKILL)
                d.wait()
        old.close()
        listener.client.loop_stop()
        listener.client.disconnect()
    logs = {n: (tmp_path / n / f"{n}.log").read_text() for n in names}
    assert codes == [0, 0, 0], {n: log[-2000:] for n, log in logs.items()}

    # Assert: 50 rounds, each with the three devices and the 1.1 device.
    lines = [m for m in read_metrics(state) if m["status"] == "ok"]
    assert [m["participants"] for m in lines] == [4] * ROUNDS
    assert old.errors == []
    assert sorted(old.sent) == list(range(1, ROUNDS + 1))
    # Every stored version is what the published deltas rebuild from version 0, and the dense copy, bit for bit.
    store = GlobalStore(state / "models")
    deltas, dense = published_models(listener, limits)
    assert [(d.base_version, d.model_version) for d in deltas] == [(v - 1, v) for v in range(1, ROUNDS + 1)]
    weights = store.load_weights(0)[1]
    for delta in deltas:
        weights = apply_delta(weights, delta, limits)
        assert weights.tobytes() == store.load_weights(delta.model_version)[1].tobytes()
    assert {m.model_version: m.weights_sha256 for m in dense} == {
        v: weights_sha256(store.load_weights(v)[1]) for v in range(ROUNDS + 1)
    }
    # Each device took version 0 dense and every later one as a delta (none refused: each matched the
    # gateway's hash), holds exactly the store's version, and received far fewer model bytes than dense.
    dense_bytes = sum(m["downlink_dense_bytes"] for m in lines) / ROUNDS
    for name, folder in folders.items():
        received = json.loads((folder / "downlink.json").read_text())
        version = json.loads((folder / "meta.json").read_text())["model_version"]
        assert version >= ROUNDS - 1
        assert received["models"] == {"dense": 1, "delta": version}, (name, received)
        # Only that one dense model reached it: the first carried `deltas: true`, so it dropped global/+.
        assert received["bytes"]["global"] < 1.1 * lines[0]["downlink_dense_bytes"], (name, received)
        assert np.load(folder / "global.npy").tobytes() == store.load_weights(version)[1].tobytes()
        per_round = (received["bytes"].get("delta", 0) + received["bytes"].get("global", 0)) / ROUNDS
        assert per_round < 0.15 * dense_bytes, (name, received, dense_bytes)

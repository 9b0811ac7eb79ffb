"""The device takes downlink deltas over a real Mosquitto (docs/protocol.md 2b), with a test-side gateway.

One ``fmfl client`` process through: a dense first model; a delta whose result does not hash to its
``weights_sha256`` (refused: the held weights and version unchanged, the dense model taken instead); a
delta from a version it does not hold (the dense model); deltas applied while it keeps up, with
``global/+`` dropped (no dense bytes received); a restart after missing two versions with its broker
session lost (the retained delta does not fit: dense); a restart whose persistent session queued the
deltas it missed (applied in order, no dense model). Its weights are the gateway's, byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.wire_gateway import WireGateway

from fmfl.aggregator.core.downlink import DownlinkCompressor
from fmfl.bundle import verify_bundle
from fmfl.mqtt import make_client, parse_broker_url
from fmfl.protocol import (
    ClientUpdate,
    GlobalModel,
    Topics,
    UpdateEncoder,
)
from fmfl.protocol.downlink import weights_sha256

TOPICS = Topics("test")
RUN = 1767225600000


class DeltaGateway(WireGateway):
    """The test gateway of run ``RUN`` that also makes each version as a delta (``DownlinkCompressor``)."""

    def __init__(self, url: str, bundle_id: str, initial: np.ndarray) -> None:
        super().__init__(url, initial.size, run=RUN)
        self.bundle_id = bundle_id
        self.downlink = DownlinkCompressor("topk:0.1+int8+ef", self.n)
        self.weights = {0: initial.astype(np.float32)}
        self.rng = np.random.default_rng(4)
        self.round = 0

    def next_version(self, version: int) -> tuple[GlobalModel, GlobalModel]:
        """Version ``version`` (from ``version - 1``, moved a little) as (delta, dense); not published."""
        base = self.weights[version - 1]
        candidate = (base + self.rng.normal(scale=0.01, size=self.n)).astype(np.float32)
        self.weights[version] = self.downlink.rebase(base, version - 1, candidate)
        delta = self.downlink.delta
        assert delta is not None
        return (GlobalModel(self.bundle_id, version, version - 1, delta.payload, run=RUN,
                            weights_sha256=delta.weights_sha256),
                self.dense(version))  # fmt: skip

    def dense(self, version: int) -> GlobalModel:
        w = self.weights[version]
        return GlobalModel(self.bundle_id, version, None, UpdateEncoder("dense", self.n).encode(w), run=RUN,
                           weights_sha256=weights_sha256(w))  # fmt: skip

    def task(self, version: int) -> None:
        self.round += 1
        self.send_task(self.bundle_id, self.round, version, ("dev-1",), local_steps=1)

    def next_acked_update(self) -> ClientUpdate:
        """The next update, acknowledged."""
        update = self.next_update(self.bundle_id)
        self.ack(update)
        return update


def start_client(bundle: Path, data: Path, state: Path, url: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "fmfl.cli", "-v", "client", "--bundle", str(bundle), "--data", str(data),
           "--state-dir", str(state), "--broker", url, "--client-id", "dev-1", "--federation", "test"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def counts(state: Path) -> dict[str, Any]:
    path = state / "downlink.json"
    return json.loads(path.read_text()) if path.exists() else {"bytes": {}, "models": {}}


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def held(state: Path) -> tuple[int, bytes]:
    meta = json.loads((state / "meta.json").read_text())
    return int(meta["model_version"]), np.load(state / "global.npy").tobytes()


@pytest.mark.slow
def test_device_applies_deltas_refuses_bad_ones_and_falls_back_to_the_dense_model(
    mosquitto: Any, vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    manifest = verify_bundle(vit_bundle)
    gw = DeltaGateway(mosquitto.url, manifest.bundle_id, np.load(vit_bundle / "initial_weights.npy"))
    state = tmp_path / "state"
    proc = start_client(vit_bundle, fmnist_shard, state, mosquitto.url)
    out = ""
    try:
        # 1. A new device takes the dense model.
        _, dense1 = gw.next_version(1)
        gw.publish_model(dense1)
        gw.task(1)
        assert gw.next_acked_update().model_version == 1
        assert held(state) == (1, gw.weights[1].tobytes())

        # 2. A delta whose result does not hash to its weights_sha256 (a corrupted or mismatched delta):
        #    refused, version 1 kept byte for byte; then the dense model of version 2 is taken.
        delta2, dense2 = gw.next_version(2)
        gw.publish_model(GlobalModel(manifest.bundle_id, 2, 1, delta2.payload, run=RUN,
                                     weights_sha256=weights_sha256(gw.weights[1])))  # fmt: skip
        wait_for(lambda: counts(state)["models"].get("refused_delta") == 1, "the refusal")
        assert held(state) == (1, gw.weights[1].tobytes())
        gw.publish_model(dense2)
        gw.task(2)
        assert gw.next_acked_update().model_version == 2
        assert held(state) == (2, gw.weights[2].tobytes())

        # 3. Keeping up: the delta is applied, and the dense copy never reaches the device (global/+ dropped).
        dense_bytes = counts(state)["bytes"].get("global", 0)
        for version in (3, 4):
            delta, dense = gw.next_version(version)
            gw.publish_model(delta)
            gw.publish_model(dense)
            gw.task(version)
            assert gw.next_acked_update().model_version == version
            assert held(state) == (version, gw.weights[version].tobytes())
        assert counts(state)["models"].get("delta") == 2
        assert counts(state)["bytes"].get("global", 0) == dense_bytes
        out += stop(proc)

        # 4. Two versions missed and the broker session lost: the retained delta (5 -> 6) does not fit the
        #    held version 4, so the device takes the dense model of version 6.
        session = make_client("fmfl-dev-1", parse_broker_url(mosquitto.url), clean_session=True)
        session.connect("127.0.0.1", mosquitto.port)
        session.disconnect()
        for version in (5, 6):
            delta, dense = gw.next_version(version)
            gw.publish_model(delta)
            gw.publish_model(dense)
        gw.task(6)
        dense_taken = counts(state)["models"].get("dense", 0)
        proc = start_client(vit_bundle, fmnist_shard, state, mosquitto.url)
        assert gw.next_acked_update().model_version == 6
        assert held(state) == (6, gw.weights[6].tobytes())
        assert counts(state)["models"].get("dense") == dense_taken + 1
        out += stop(proc)

        # 5. Offline with its persistent session: the broker queues the deltas it misses; on reconnect it
        #    applies them in order (6 -> 7 -> 8) and needs no dense model.
        for version in (7, 8):
            delta, dense = gw.next_version(version)
            gw.publish_model(delta)
            gw.publish_model(dense)
        gw.task(8)
        proc = start_client(vit_bundle, fmnist_shard, state, mosquitto.url)
        assert gw.next_acked_update().model_version == 8
        assert held(state) == (8, gw.weights[8].tobytes())
        assert counts(state)["models"].get("dense") == dense_taken + 1
        assert counts(state)["models"].get("delta") == 4
    finally:
        out += stop(proc)
        gw.close()
    assert "refused global v2 (delta from v1): hash_mismatch" in out, out[-3000:]
    assert "kept v1" in out

"""The device over a real Mosquitto: a test-side gateway (``support.wire_gateway``) publishes a global model
and a round task, the ``fmfl client`` process trains and uploads, and the update decodes to what the device
trained."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.wire_gateway import WireGateway

from fmfl.bundle import verify_bundle
from fmfl.protocol import (
    Ack,
    ClientUpdate,
    GlobalModel,
    RoundTask,
    Topics,
    UpdateEncoder,
    decode_update,
)

TOPICS = Topics("test")


def start_client(bundle: Path, data: Path, state: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "fmfl.cli", "-v", "client", "--bundle", str(bundle), "--data", str(data),
           "--state-dir", str(state), "--broker", url, "--client-id", "dev-1", "--federation", "test", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def gateway(mosquitto: Any, vit_bundle: Path) -> Any:
    gw = WireGateway(mosquitto.url, verify_bundle(vit_bundle).num_trainable)
    yield gw
    gw.close()


def test_device_trains_on_the_task_and_uploads_a_decodable_update(
    mosquitto: Any, gateway: WireGateway, vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    # Prepare: global model v3 (the bundle's weights, slightly moved) and a task selecting dev-1
    manifest = verify_bundle(vit_bundle)
    weights = np.load(vit_bundle / "initial_weights.npy") + np.float32(0.001)
    gateway.send_global(manifest.bundle_id, 3, weights)
    gateway.send_task(manifest.bundle_id, round_=1, version=3, selected=("dev-1", "dev-2"))

    # Execute
    proc = start_client(vit_bundle, fmnist_shard, tmp_path / "state", mosquitto.url, "--rounds", "1")
    try:
        update = gateway.next_update(manifest.bundle_id)
        gateway.ack(update)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a device process behind a failed test
            proc.kill()
            proc.wait()

    # Assert
    assert proc.returncode == 0, out
    assert (update.client_id, update.round, update.model_version) == ("dev-1", 1, 3)
    assert update.num_samples == 480
    assert 0 <= update.metrics["eval_accuracy"] <= 1
    sparse = decode_update(update.payload, manifest.num_trainable, gateway.limits)
    assert 0 < sparse.nnz <= 0.05 * manifest.num_trainable + len(manifest.trainable)
    assert np.isfinite(sparse.values).all()
    assert np.abs(sparse.values).max() > 0
    state = tmp_path / "state"
    assert np.array_equal(np.load(state / "global.npy"), weights)  # the received model is the last good one
    assert not list((state / "outbox").glob("*.npz"))  # acknowledged: outbox empty, residual kept
    assert np.abs(np.load(state / "residual.npy")).sum() > 0


def test_unacknowledged_update_is_resent_after_a_kill_and_counted_once(
    mosquitto: Any, gateway: WireGateway, vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    manifest = verify_bundle(vit_bundle)
    gateway.send_global(manifest.bundle_id, 1, np.load(vit_bundle / "initial_weights.npy"))
    gateway.send_task(manifest.bundle_id, round_=1, version=1, selected=("dev-1",))
    proc = start_client(vit_bundle, fmnist_shard, tmp_path / "state", mosquitto.url)
    try:
        first = gateway.next_update(manifest.bundle_id)
    finally:
        proc.send_signal(signal.SIGKILL)  # before any ack (and never left behind)
        proc.wait(10)

    # restart: the device must not retrain round 1, but resend the very same update
    proc = start_client(vit_bundle, fmnist_shard, tmp_path / "state", mosquitto.url)
    try:
        again = gateway.next_update(manifest.bundle_id)
        assert again.update_id == first.update_id
        assert again.payload == first.payload
        gateway.ack(again)
        deadline = time.monotonic() + 30
        while list((tmp_path / "state" / "outbox").glob("*.npz")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list((tmp_path / "state" / "outbox").glob("*.npz"))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_malformed_and_foreign_global_models_are_ignored(
    mosquitto: Any, gateway: WireGateway, vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    manifest = verify_bundle(vit_bundle)
    good = np.load(vit_bundle / "initial_weights.npy")
    gateway.send_global(manifest.bundle_id, 2, good)
    proc = start_client(vit_bundle, fmnist_shard, tmp_path / "state", mosquitto.url)
    try:
        state = tmp_path / "state" / "global.npy"
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert np.array_equal(np.load(state), good)
        # garbage bytes, a NaN model, and a model for another bundle: none may replace the good one
        gateway.client.publish(TOPICS.global_model_chunk(0), b"\x00garbage", qos=1, retain=True).wait_for_publish(5)
        nan = good.copy()
        nan[0] = np.nan
        gateway.publish_model(GlobalModel(manifest.bundle_id, 5, None, _raw_dense(nan)))
        gateway.send_global("f" * 24, 6, good + 1)
        time.sleep(2)
        assert np.array_equal(np.load(state), good)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "ignored a bad message" in out


def _raw_dense(values: np.ndarray) -> bytes:
    """A dense payload carrying NaN: the encoder refuses NaN, so take a finite encoding and patch it."""
    finite = values.copy()
    finite[0] = 12345.0
    payload = bytearray(UpdateEncoder("dense", values.size).encode(finite))
    marker = np.float32(12345.0).tobytes()
    at = bytes(payload).find(marker)
    assert at >= 0
    payload[at : at + 4] = np.float32(np.nan).tobytes()
    return bytes(payload)


def test_broker_down_is_a_clear_error(vit_bundle: Path, fmnist_shard: Path, tmp_path: Path) -> None:
    from fmfl.mqtt.mosquitto import free_port

    proc = start_client(vit_bundle, fmnist_shard, tmp_path / "state", f"mqtt://127.0.0.1:{free_port()}",
                        "--connect-attempts", "3")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert "cannot reach the MQTT broker" in out
    assert "after 3 attempts" in out
    assert out.count("unreachable") == 3  # each attempt logged, with its backoff delay


def test_a_1_2_task_gets_a_compact_update_and_a_refused_update_is_never_resent(
    mosquitto: Any, gateway: WireGateway, vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    # Prepare: a protocol 1.2 gateway (its model and task name run 5); an older run's task is ignored.
    manifest = verify_bundle(vit_bundle)
    weights = np.load(vit_bundle / "initial_weights.npy")
    payload = UpdateEncoder("dense", gateway.n).encode(weights)
    gateway.publish_model(GlobalModel(manifest.bundle_id, 2, None, payload, run=5))
    task = RoundTask(federation="test", bundle_id=manifest.bundle_id, round=3, model_version=2,
                     selected=("dev-1",), batch_size=32, lr=0.01, codec="topk:0.01+int8+ef",
                     deadline=time.time() + 120, seed=1, local_epochs=1, run=5)  # fmt: skip
    gateway.publish(TOPICS.task, task.to_bytes())
    proc = start_client(vit_bundle, fmnist_shard, tmp_path / "state", mosquitto.url, "--resend-after", "1")
    try:
        # Execute: the device's upload, then a negative Ack, then 4 s in which a resend would come.
        topic, packet = gateway.updates.get(timeout=120)
        update = ClientUpdate.decode(packet, gateway.limits, federation="test", client_id="dev-1",
                                     bundle_id=manifest.bundle_id)  # fmt: skip
        refusal = Ack("dev-1", 3, update.update_id, accepted=False, reason="wrong_version",
                      detail="model_version 2, round 3 trains version 9", run=5)  # fmt: skip
        gateway.publish(TOPICS.ack("dev-1"), refusal.to_bytes(), retain=False)
        time.sleep(4)
        later = [gateway.updates.get_nowait() for _ in range(gateway.updates.qsize())]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # Assert: one bare compact frame of the default codec, under 512 bytes for this 12,810-float head ...
    assert topic == TOPICS.update("dev-1")
    assert packet[:4] == b"FMFL"
    assert packet[7] == 1
    assert (update.run, update.round, update.model_version) == (5, 3, 2)
    assert len(packet) <= 512 or manifest.num_trainable != 12_810, len(packet)
    # ... dropped from the outbox on the negative Ack and never sent again.
    assert later == [], out
    assert not list((tmp_path / "state" / "outbox").glob("*.npz"))
    assert "rejected: wrong_version" in out

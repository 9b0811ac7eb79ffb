"""A real ``fmfl client`` round on an emulated arm64 device, checked against the same round run natively.

The device runs in an arm64 Debian userland under qemu user-mode emulation (scripts/arm64_rootfs.sh builds it,
scripts/arm64_run.sh enters it), with fmfl installed there by pip from this checkout's wheel and its device
dependencies as aarch64 wheels. Mosquitto and ``fmfl aggregator`` run natively on the host's loopback.

The same round (same bundle, data, seed and settings; the dense fp32 codec, so no top-k selection tie can
flip between the two float implementations; a bundle trained with SGD, see ``sgd_vit_bundle`` for why not
AdamW) runs twice, each with its own gateway: once with a native ``fmfl client``, once with the arm64 one.
The arm64 gateway selects only devices whose hello says ``machine=aarch64``. The round's global model from
the arm64 device must equal the native one to float tolerance, and the device's reported training and
evaluation metrics must agree. Nothing here measures or reports time.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.arm64 import REPO, VENV, arm64_run

from fmfl.aggregator.durable.store import GlobalStore

CLIENT_ID = "edge-1"
# One round, one device, three local steps of 16 on 51 training images (64 less the 20% eval split).
ROUND = {
    "rounds": 1, "clients-per-round": 1, "min-clients": 1, "over-select": 1.0, "selection-window": 0.5,
    "start-timeout": 600, "round-timeout": 900, "seed": 11, "local-steps": 3, "batch-size": 16,
    "codec": "dense",
    # the stored version 1 is then the plain FedAvg of the update (a downlink delta re-bases it to a sparse step)
    "downlink-codec": "dense",
}  # fmt: skip
# Same env for both devices: one thread everywhere (ONNX Runtime is also told --threads 1).
DEVICE_ENV = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
WAIT_S = 1200  # emulated ONNX Runtime kernels are hundreds of times slower (this model: seconds in all)


def client_args(bundle: Path, data: Path, state: Path, url: str, federation: str) -> list[str]:
    return ["-v", "client", "--bundle", str(bundle), "--data", str(data), "--state-dir", str(state),
            "--broker", url, "--client-id", CLIENT_ID, "--federation", federation, "--threads", "1",
            "--rounds", "1"]  # fmt: skip


def run_round(bundle: Path, workdir: Path, url: str, federation: str, machine: str, client_cmd: list[str],
              client_env: dict[str, str]) -> tuple[Path, str]:
    """One gateway round with one device; returns the gateway's state folder and the device's output."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "gateway"
    gw_cmd = [sys.executable, "-m", "fmfl.cli", "-v", "aggregator", "--bundle", str(bundle), "--broker", url,
              "--federation", federation, "--state-dir", str(state), "--require", f"machine={machine}"]
    for key, value in ROUND.items():
        gw_cmd += [f"--{key}", str(value)]
    gw_log, dev_log = workdir / "aggregator.log", workdir / "client.log"

    def logs() -> str:
        return f"--- gateway:\n{gw_log.read_text()[-3000:]}\n--- device:\n{dev_log.read_text()[-3000:]}"

    gateway: subprocess.Popen[bytes] | None = None
    device: subprocess.Popen[bytes] | None = None
    try:
        with gw_log.open("wb") as g, dev_log.open("wb") as d:
            gateway = subprocess.Popen(gw_cmd, stdout=g, stderr=subprocess.STDOUT, cwd=REPO,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
            # Its own process group: proot and the emulated processes under it go with it.
            device = subprocess.Popen(client_cmd, stdout=d, stderr=subprocess.STDOUT, env=client_env,
                                      start_new_session=True)
            # Until both are done; a device that dies early fails the test now, not at the gateway's timeout.
            deadline = time.monotonic() + WAIT_S
            while gateway.poll() is None and device.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if device.poll() not in (None, 0):
                pytest.fail(f"{federation}: the device exited with {device.returncode}\n{logs()}")
            gw_code = gateway.wait(max(60.0, deadline - time.monotonic()))
            dev_code = device.wait(60)  # it stops after its one round, once the gateway's Ack is in
    except subprocess.TimeoutExpired:
        pytest.fail(f"{federation}: the round did not finish in time\n{logs()}")
    finally:  # never leave a gateway or a device behind
        if device is not None and device.poll() is None:
            os.killpg(device.pid, signal.SIGKILL)
            device.wait()
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.wait()
    assert gw_code == 0, f"{federation}: the gateway exited with {gw_code}\n{logs()}"
    assert dev_code == 0, f"{federation}: the device exited with {dev_code}\n{logs()}"
    return state, dev_log.read_text()


def round_record(state: Path) -> dict[str, Any]:
    (line,) = (state / "metrics.jsonl").read_text().splitlines()
    record: dict[str, Any] = json.loads(line)
    return record


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.timeout(3600)  # a cold cache builds the userland first (about 5 minutes); CI builds it before pytest
def test_arm64_device_round_matches_the_native_round(
    arm64_fmfl: Path, sgd_vit_bundle: Path, small_fmnist_shard: Path, mosquitto: Any,
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Prepare: the device's files (bundle, data, state) are bound into the userland at their host paths.
    rootfs = arm64_fmfl
    shared = tmp_path_factory.getbasetemp()
    bundle, data = sgd_vit_bundle, small_fmnist_shard
    assert bundle.is_relative_to(shared)
    assert data.is_relative_to(shared)
    assert tmp_path.is_relative_to(shared)

    # Execute: the native round, then the arm64 one (own federations: no retained task or model crosses over)
    native_state, native_out = run_round(
        bundle, tmp_path / "native", mosquitto.url, "native", platform.machine(),
        [sys.executable, "-m", "fmfl.cli", *client_args(bundle, data, tmp_path / "native" / "device",
                                                        mosquitto.url, "native")],
        {**os.environ, **DEVICE_ENV},
    )
    arm_state, arm_out = run_round(
        bundle, tmp_path / "arm64", mosquitto.url, "arm64", "aarch64",
        arm64_run(rootfs, [f"{VENV}/bin/fmfl", *client_args(bundle, data, tmp_path / "arm64" / "device",
                                                             mosquitto.url, "arm64")],
                  binds=[shared], env=DEVICE_ENV),
        {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )

    # Assert: each round closed with its one device's update accepted
    native_rec, arm_rec = round_record(native_state), round_record(arm_state)
    for out in (native_out, arm_out):
        assert re.search(r"round 1 update \S+ accepted", out), out[-3000:]  # the device got the gateway's Ack
    for rec in (native_rec, arm_rec):
        assert (rec["status"], rec["version"], rec["participants"], rec["rejected_by_reason"]) == ("ok", 1, 1, {}), rec
    native_store, arm_store = GlobalStore(native_state / "models"), GlobalStore(arm_state / "models")
    v0_native, v0_arm = native_store.load_weights(0)[1], arm_store.load_weights(0)[1]
    assert np.array_equal(v0_native, v0_arm)
    native, arm = native_store.load_weights(1)[1], arm_store.load_weights(1)[1]
    native_delta = native.astype(np.float64) - v0_native
    arm_delta = arm.astype(np.float64) - v0_arm
    # The round moved the model (a device that sent nothing, or zeros, fails here)...
    assert np.abs(native_delta).max() > 1e-4
    assert np.count_nonzero(native_delta) > native.size // 2
    # ... and the arm64 device moved it the same way: the global models agree to float tolerance, and so do
    # the deltas, relative to the delta's own scale (a much tighter check than on the weights).
    np.testing.assert_allclose(arm, native, rtol=1e-4, atol=1e-6)
    scale = np.abs(native_delta).max()
    worst = np.abs(arm_delta - native_delta).max()
    assert worst <= 1e-3 * scale, f"arm64 delta differs by up to {worst:.3g} (delta scale {scale:.3g})"
    # The device's own evaluation and training loss (computed on the device, reported with the update) agree.
    arm_m, native_m = arm_rec["metrics"], native_rec["metrics"]
    assert arm_m["eval_samples"] == native_m["eval_samples"] > 0, (arm_m, native_m)
    assert arm_m["eval_accuracy"] == native_m["eval_accuracy"], (arm_m, native_m)
    for key in ("eval_loss", "train_loss"):
        assert arm_m[key] == pytest.approx(native_m[key], rel=1e-4), (key, arm_m, native_m)
    print(f"arm64 vs native global model v1: max |diff| {np.abs(arm - native).max():.3g}, "
          f"max |delta diff| / max |delta| {worst / scale:.3g}")

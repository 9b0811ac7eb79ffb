"""Local DP on a real device round (ORT training on Fashion-MNIST) and through ``fmfl client --once``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from fmfl.cli import main
from fmfl.edge_client.device import DeviceConfig, EdgeDevice
from fmfl.privacy.local import LocalDp
from fmfl.protocol import Limits, RoundTask, decode_update


def _task(bundle_id: str, rnd: int) -> RoundTask:
    return RoundTask(
        federation="default", bundle_id=bundle_id, round=rnd, model_version=0, selected=("d1",), batch_size=32,
        lr=0.01, codec="dense", deadline=time.time() + 60, seed=7, local_epochs=1,
    )  # fmt: skip


def test_device_rounds_send_clipped_noised_deltas_and_report_their_epsilon(
    vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    # Prepare: a tiny clip and a large multiplier, so what is sent is almost all noise of std z*C.
    dp = LocalDp(clip=1e-4, noise_multiplier=50.0, delta=1e-5)
    device = EdgeDevice(DeviceConfig(bundle=vit_bundle, data=fmnist_shard, state_dir=tmp_path / "s",
                                     client_id="d1", local_dp=dp))  # fmt: skip
    _, weights = device.global_model()
    # Execute: two rounds.
    updates = [device.run_round(_task(device.manifest.bundle_id, r), weights) for r in (1, 2)]
    # Assert
    assert [u.metrics["local_dp_releases"] for u in updates] == [1.0, 2.0]
    assert updates[0].metrics["local_dp_epsilon"] == dp.epsilon(1) < updates[1].metrics["local_dp_epsilon"]
    sent = decode_update(updates[0].payload, weights.size, Limits.for_vector_size(weights.size)).to_dense()
    assert sent.size == weights.size
    assert sent.size > 1000
    # The signal is at most C = 1e-4 in norm; the noise has std 5e-3 per coordinate.
    assert sent.astype(np.float64).std() == pytest.approx(dp.sigma, rel=0.1)
    assert json.loads((tmp_path / "s" / "local_dp.json").read_text()) == {"releases": 2}


def test_once_reports_the_per_update_epsilon(vit_bundle: Path, fmnist_shard: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["client", "--once", "--bundle", str(vit_bundle), "--data", str(fmnist_shard), "--state-dir",
            str(tmp_path / "s"), "--local-dp-clip", "0.5", "--local-dp-noise-multiplier", "2"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["local_dp_epsilon_per_update"] == round(LocalDp(0.5, 2.0).epsilon(1), 4)
    assert not (tmp_path / "s" / "local_dp.json").exists()  # --once sends nothing, so releases nothing


def test_half_given_local_dp_options_are_refused_before_anything_is_read(
    vit_bundle: Path, fmnist_shard: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["client", "--once", "--bundle", str(vit_bundle), "--data", str(fmnist_shard), "--state-dir",
            str(tmp_path / "s"), "--local-dp-clip", "0.5"]
    assert main(argv) == 2
    assert "--local-dp-clip and --local-dp-noise-multiplier go together" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()

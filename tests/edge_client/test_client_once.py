"""``fmfl client --once`` on real data and a real bundle: trains, caches, stays torch-free, refuses bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmfl.bundle.signing import generate_keypair
from fmfl.cli import main


def once(bundle: Path, data: Path, state: Path, *extra: str) -> list[str]:
    return ["client", "--once", "--bundle", str(bundle), "--data", str(data), "--state-dir", str(state),
            "--epochs", "2", "--lr", "0.01", *extra]


def test_once_trains_and_reports(vit_bundle: Path, fmnist_shard: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(once(vit_bundle, fmnist_shard, tmp_path / "state")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train_samples"] == 480
    assert report["eval_samples"] == 120
    assert report["feature_cache"] == "miss"
    assert report["after"]["eval_loss"] < report["before"]["eval_loss"]
    assert report["update_bytes"] * 20 < report["dense_fp32_bytes"]


def test_feature_cache_is_reused_and_identical(vit_bundle: Path, fmnist_shard: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from fmfl.edge_client.device import DeviceConfig, EdgeDevice

    cfg = DeviceConfig(bundle=vit_bundle, data=fmnist_shard, state_dir=tmp_path / "state", client_id="d1")
    first = EdgeDevice(cfg)
    second = EdgeDevice(cfg)
    assert (first.cache_info["cache"], second.cache_info["cache"]) == ("miss", "hit")
    for name, value in first.train_data.inputs.items():
        np.testing.assert_array_equal(np.asarray(second.train_data.inputs[name]), value)


def test_a_full_client_round_never_imports_torch_or_transformers(vit_bundle: Path, fmnist_shard: Path,
                                                                 tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from fmfl.cli import main\n"
        f"rc = main({once(vit_bundle, fmnist_shard, tmp_path / 'state')!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'onnx'))\n"
        "assert 'onnxruntime' in sys.modules\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_tampered_bundle_is_refused_before_onnxruntime_loads(vit_bundle: Path, fmnist_shard: Path,
                                                             tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(vit_bundle, bundle)
    path = bundle / "train_step.onnx"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    code = (
        "import sys\n"
        "from fmfl.cli import main\n"
        f"rc = main({once(bundle, fmnist_shard, tmp_path / 'state')!r})\n"
        "print('ORT_LOADED', 'onnxruntime' in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "train_step.onnx does not match its sha256" in result.stderr
    assert "ORT_LOADED False" in result.stdout
    assert not (tmp_path / "state").exists()


def test_unsigned_bundle_is_refused_when_a_trust_key_is_configured(vit_bundle: Path, fmnist_shard: Path,
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, public = generate_keypair(tmp_path / "key")
    assert main(once(vit_bundle, fmnist_shard, tmp_path / "state", "--trust-key", str(public))) == 2
    assert "is unsigned" in capsys.readouterr().err


def test_missing_data_gives_a_clear_error(vit_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(once(vit_bundle, tmp_path / "nowhere", tmp_path / "state")) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err
    assert "error" in err


def test_labels_outside_the_manifest_are_refused(vit_bundle: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from fmfl.edge_client.data import write_npz

    path = tmp_path / "bad.npz"
    write_npz(path, np.zeros((4, 28, 28), dtype=np.uint8), np.array([0, 1, 2, 17]))
    assert main(once(vit_bundle, path, tmp_path / "state")) == 2
    assert "17" in capsys.readouterr().err


def test_outbox_entry_is_the_commit_point_of_a_round(tmp_path: Path) -> None:
    """A kill after the outbox entry was written but before meta.json was updated must not retrain the round."""
    from fmfl.edge_client.state import ClientState

    state = ClientState(tmp_path, "b" * 24)
    state.commit_update(7, "u7", b"message", np.ones(4))
    (tmp_path / "meta.json").write_text('{"bundle_id": "' + "b" * 24 + '"}')  # as if the meta write was lost
    reopened = ClientState(tmp_path, "b" * 24)
    assert reopened.last_round == 7
    assert [e.update_id for e in reopened.pending()] == ["u7"]
    np.testing.assert_array_equal(reopened.residual(4), np.ones(4))
    assert reopened.acknowledge("u7")
    assert not reopened.pending()
    np.testing.assert_array_equal(reopened.residual(4), np.ones(4))  # the acknowledged residual is kept

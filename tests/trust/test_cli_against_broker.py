"""The real `fmfl aggregator` process against a provisioned broker: wrong credentials exit with the reason."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
from support.trust import Federation

from fmfl.bundle.manifest import Manifest, TrainableTensor
from fmfl.bundle.verify import verify_bundle


def _synthetic_bundle(path: Path, size: int = 8) -> Path:
    """A verifiable bundle with only what the gateway reads (manifest + initial weights)."""
    path.mkdir(parents=True)
    np.save(path / "initial_weights.npy", np.zeros(size, np.float32), allow_pickle=False)
    data = (path / "initial_weights.npy").read_bytes()
    manifest = Manifest(
        model={"family": "synthetic", "id": "synthetic", "ref": "synthetic", "revision": "local"},
        task={"kind": "classify", "labels": ["0", "1"], "output": "logits"},
        train_spec="head", optimizer={"lr": 0.01, "name": "sgd"}, split={}, graph={}, preprocessing={},
        trainable=(TrainableTensor("head.weight", (size,), "float32", 0),),
        artifacts={"initial_weights": "initial_weights.npy"}, versions={"schema": "fmfl.bundle/1"},
        files={"initial_weights.npy": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
    )
    manifest = Manifest(**{**manifest.__dict__, "bundle_id": manifest.derive_bundle_id()})
    (path / "manifest.json").write_bytes(manifest.to_json())
    verify_bundle(path)
    return path


def _aggregator(fed: Federation, tmp_path: Path, password: str) -> subprocess.CompletedProcess[str]:
    gw = fed.layout.gateway("aggregator")
    return subprocess.run(
        [sys.executable, "-m", "fmfl.cli", "aggregator", "--bundle", str(_synthetic_bundle(tmp_path / "bundle")),
         "--broker", f"mqtts://127.0.0.1:{fed.port}", "--federation", "trust",
         "--state-dir", str(tmp_path / "state"), "--rounds", "1", "--clients-per-round", "1",
         "--start-timeout", "1", "--username", "aggregator", "--password", password, "--cafile", str(gw.cafile)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_aggregator_with_a_wrong_password_exits_with_not_authorized(federation: Federation,
                                                                    tmp_path: Path) -> None:
    done = _aggregator(federation, tmp_path, "wrong")
    assert done.returncode == 2, done.stderr
    assert ("fmfl aggregator: error: the MQTT broker at 127.0.0.1:" in done.stderr)
    assert ("refused the connection: Not authorized (user 'aggregator'" in done.stderr)


def test_aggregator_with_its_provisioned_password_gets_past_the_broker(federation: Federation,
                                                                       tmp_path: Path) -> None:
    done = _aggregator(federation, tmp_path, federation.password("aggregator"))
    # Connected and subscribed; it then gives up only because no device is online (--start-timeout 1).
    assert done.returncode == 2, done.stderr
    assert "only 0 eligible client(s) online after 1 s" in done.stderr, done.stderr
    assert "refused the connection" not in done.stderr
    assert "u'aggregator'" in federation.log()

"""Bundles a device must refuse, and local training that goes non-finite: each a clear error, nothing lost.

The bundles are the session's real tiny-ViT bundle, edited and re-hashed (tests/support/bundle_edit.py) so that the
device sees a consistent manifest and has to catch the content itself.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.bundle_edit import edited_bundle

from fmfl.bundle import verify_bundle
from fmfl.bundle.graph_ops import NonStandardGraph
from fmfl.cli import main
from fmfl.edge_client.runtime import GraphLoadError, RuntimeTooOld
from fmfl.edge_client.trainer import GraphMismatch, NonFiniteGradient, Trainer
from fmfl.protocol import DEFAULT_CODEC, RoundTask

onnx = pytest.importorskip("onnx", reason="the tests edit graphs with the onnx package (the device never does)")


def _edit_graph(folder: Path, name: str, change: Any) -> None:
    model = onnx.load(str(folder / name))
    change(model)
    onnx.save(model, str(folder / name))


def _once(bundle: Path, data: Path, state: Path) -> list[str]:
    return ["client", "--once", "--bundle", str(bundle), "--data", str(data), "--state-dir", str(state)]


def test_a_train_step_graph_with_a_contrib_op_is_refused(vit_bundle: Path, fmnist_shard: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    def contrib(model: Any) -> None:
        gelu = next(n for n in model.graph.node if n.op_type == "Gelu")
        gelu.domain = "com.microsoft"  # com.microsoft:Gelu exists in ORT's CPU build, not in every build
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))

    bundle = edited_bundle(vit_bundle, tmp_path / "b", lambda _m, d: _edit_graph(d, "train_step.onnx", contrib))
    assert main(_once(bundle, fmnist_shard, tmp_path / "state")) == 2
    err = capsys.readouterr().err
    assert "train_step.onnx uses operators outside the standard ai.onnx set: com.microsoft:Gelu" in err
    with pytest.raises(NonStandardGraph):
        Trainer(bundle, verify_bundle(bundle))


def test_graph_inputs_that_do_not_match_the_manifest_are_refused(vit_bundle: Path, tmp_path: Path) -> None:
    def rename(manifest: dict[str, Any], _folder: Path) -> None:
        manifest["graph"]["train_step"]["inputs"] = ["encoder.hidden", "targets"]

    bundle = edited_bundle(vit_bundle, tmp_path / "b", rename)
    with pytest.raises(GraphMismatch, match=r"train_step.onnx does not match the manifest: inputs \[.*'labels'\]"):
        Trainer(bundle, verify_bundle(bundle))


def test_an_onnxruntime_older_than_the_bundle_needs_is_named(vit_bundle: Path, fmnist_shard: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    def future(manifest: dict[str, Any], _folder: Path) -> None:
        manifest["versions"]["min_onnxruntime"] = "99.0.0"

    bundle = edited_bundle(vit_bundle, tmp_path / "b", future)
    with pytest.raises(RuntimeTooOld, match=rf"needs onnxruntime >= 99.0.0; onnxruntime {onnxruntime.__version__} "
                                            r"is installed: pip install -U"):
        Trainer(bundle, verify_bundle(bundle))
    assert main(_once(bundle, fmnist_shard, tmp_path / "state")) == 2
    assert "needs onnxruntime >= 99.0.0" in capsys.readouterr().err


def test_a_graph_opset_unknown_to_onnxruntime_is_a_clear_error(vit_bundle: Path, tmp_path: Path) -> None:
    def opset_99(model: Any) -> None:
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = 99

    bundle = edited_bundle(vit_bundle, tmp_path / "b", lambda _m, d: _edit_graph(d, "eval.onnx", opset_99))
    with pytest.raises(GraphLoadError, match=r"onnxruntime could not load eval.onnx \(onnxruntime .* may be too old "
                                             r"for this graph's opset"):
        Trainer(bundle, verify_bundle(bundle))


def test_non_finite_gradients_leave_the_weights_untouched(vit_bundle: Path) -> None:
    manifest = verify_bundle(vit_bundle)
    trainer = Trainer(vit_bundle, manifest)
    initial = np.load(vit_bundle / "initial_weights.npy")
    trainer.set_weights(initial)
    shape = manifest.split["features"][0]["shape"]
    batch = {"encoder.hidden": np.full((4, *shape), np.nan, dtype=np.float32),
             "labels": np.zeros(4, dtype=np.int64)}
    with pytest.raises(NonFiniteGradient, match=r"non-finite loss \(nan\) or gradient \(in model\..*; the step was "
                                                r"not applied"):
        trainer.train_step(batch)
    np.testing.assert_array_equal(trainer.get_weights(), initial)


def test_a_round_that_diverges_uploads_nothing_and_keeps_the_model(vit_bundle: Path, fmnist_shard: Path,
                                                                   tmp_path: Path) -> None:
    from fmfl.edge_client.device import DeviceConfig, EdgeDevice

    device = EdgeDevice(DeviceConfig(bundle=vit_bundle, data=fmnist_shard, state_dir=tmp_path / "s", client_id="d1"))
    version, weights = device.global_model()
    kept = weights.copy()
    task = RoundTask(federation="default", bundle_id=device.manifest.bundle_id, round=1, model_version=version,
                     selected=("d1",), deadline=2e9, codec=str(DEFAULT_CODEC), lr=0.01, local_epochs=1,
                     local_steps=None, batch_size=32, seed=zlib.crc32(b"x"))
    blown = weights.copy()
    blown[-1] = np.float32(3e38)  # a head bias at the edge of float32: the logits overflow in the first step
    with pytest.raises(FloatingPointError, match="non-finite"):
        device.run_round(task, blown)
    assert device.state.pending() == []
    assert device.state.last_round == -1
    assert device.global_model()[0] == version
    np.testing.assert_array_equal(device.global_model()[1], kept)

"""The export's numeric gate: a train-step graph whose gradients differ from torch never becomes a bundle.

The wrong gradient here is the real one found while building this (shared/STACK.md, trap 1): onnxscript's
``nll_loss_forward`` fakes ``total_weight = 1``, so every cross-entropy gradient comes out B times too large
while the loss is right. The export pipeline decomposes that op in torch; the test takes the fix away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from fmfl.bundle import verify_bundle  # noqa: E402
from fmfl.bundle.graph_ops import NonStandardGraph, check_standard_ops, graph_ops  # noqa: E402
from fmfl.cli import main  # noqa: E402
from fmfl.export import train_step  # noqa: E402
from fmfl.export.pipeline import ExportConfig, export_bundle  # noqa: E402


def test_the_exporters_cross_entropy_bug_is_caught_and_the_export_refused(
    tmp_path: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: the exporter as it is without fmfl's fix for its nll_loss
    broken = dict(train_step.DECOMPOSITIONS)
    del broken[torch.ops.aten.nll_loss_forward.default]
    monkeypatch.setattr(train_step, "DECOMPOSITIONS", broken)
    out = tmp_path / "bundle"

    # Execute
    code = main(["export", "--model", str(tiny_vit), "--task", "classify", "--train", "head", "--num-labels", "3",
                 "--out", str(out)])

    # Assert: refused, the gradient named with its difference, nothing written
    err = capsys.readouterr().err
    assert code == 2
    assert "train_step.onnx: model.head.weight.grad differs from torch autograd beyond rtol 0.0001 / atol 1e-05" in err
    assert "a wrong gradient never reaches a device" in err
    assert list(tmp_path.iterdir()) == []


def test_every_exported_graph_uses_standard_ops_and_a_dynamic_batch(tmp_path: Path, tiny_clip: Path) -> None:
    # The dual encoder: contrastive loss, learnable temperature, square [B, B] output
    out = tmp_path / "bundle"
    export_bundle(ExportConfig(model=str(tiny_clip), task="contrastive", train="head", out=out, max_seq_len=16))
    for name in ("train_step.onnx", "eval.onnx"):
        model = onnx.load(str(out / name))
        ops = check_standard_ops(out / name)
        assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
        assert ops.num_nodes == len(model.graph.node)  # the wire-format reader agrees with onnx
        assert ops.onnx_opset == {o.domain: o.version for o in model.opset_import}[""]
        batch = model.graph.input[-1].type.tensor_type.shape.dim[0]
        assert batch.dim_param
        assert not batch.dim_value
    step = onnx.load(str(out / "train_step.onnx"))
    grads = [o.name for o in step.graph.output][2:]
    manifest = verify_bundle(out)
    assert grads == [t.name + ".grad" for t in manifest.trainable]  # manifest order: the update's layout
    assert "model.logit_scale.grad" in grads
    assert "model.image_proj.weight.grad" in grads


def test_a_graph_with_contrib_ops_is_refused_by_name(tmp_path: Path) -> None:
    # What onnxruntime-training's artifacts hold: com.microsoft gradient ops
    node = onnx.helper.make_node("SoftmaxCrossEntropyLossInternalGrad", ["d", "p", "l"], ["g"],
                                 domain="com.microsoft")
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2]) for n in "dpl"],
        [onnx.helper.make_tensor_value_info("g", onnx.TensorProto.FLOAT, [2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                         onnx.helper.make_opsetid("com.microsoft", 1)])
    path = tmp_path / "training_model.onnx"
    onnx.save(model, str(path))
    before = path.read_bytes()

    assert graph_ops(path).non_standard() == ["com.microsoft:SoftmaxCrossEntropyLossInternalGrad"]
    with pytest.raises(NonStandardGraph, match=r"training_model.onnx uses operators outside the standard ai.onnx "
                                               r"set: com.microsoft:SoftmaxCrossEntropyLossInternalGrad"):
        check_standard_ops(path)
    assert path.read_bytes() == before


def test_gate_numbers_are_recorded_in_the_manifest(tiny_vit_bundle: Path) -> None:
    gate = verify_bundle(tiny_vit_bundle).graph["train_step"]["gate"]
    assert gate["batch_sizes"] == [4, 3]
    assert 0 <= gate["max_abs_diff"] < 1e-4
    assert np.isfinite(gate["max_abs_diff"])

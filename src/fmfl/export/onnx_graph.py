"""torch -> ONNX for the two inference graphs (frozen prefix, serving suffix), weights kept by name.

- TorchScript exporter, opset 17, no constant folding: every initializer keeps its torch parameter
  name (``inference.onnx``'s trainable weights are overridden by name when a version is scored).
- Exported in eval mode: dropout off, BatchNorm statistics frozen, as the train-step graph computes.
The train-step and eval graphs, which differentiate, come from ``fmfl.export.train_step``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from fmfl.export.graphs import GraphSignature

OPSET = 17


def export_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], signature: GraphSignature,
                path: Path) -> onnx.ModelProto:
    """Export ``module`` with a dynamic batch dimension on every non-scalar input and output."""
    dynamic_axes: dict[str, dict[int, str]] = {}
    for name, tensor in zip(signature.inputs, example, strict=True):
        if tensor.dim() > 0:
            dynamic_axes[name] = {0: "batch"}
    for name in signature.outputs:
        dynamic_axes[name] = {0: "batch"}
    module.eval()
    # The tracer warns about every Python-level shape computation (SAME padding, HF's checks); the graphs are
    # exported at fixed image/sequence sizes on purpose, and the oracle tests check the result numerically.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(signature.inputs),
            output_names=list(signature.outputs),
            opset_version=OPSET,
            do_constant_folding=False,
            training=torch.onnx.TrainingMode.EVAL,
            dynamic_axes=dynamic_axes,
            dynamo=False,
            # True disables the exporter's value-based deduplication of initializers, which would merge
            # e.g. all zero-initialised biases into one tensor and lose their names; undone just below.
            keep_initializers_as_inputs=True,
        )
    model = onnx.load(str(path))
    drop_initializer_inputs(model)
    onnx.save(model, str(path))
    return model


def drop_initializer_inputs(model: onnx.ModelProto) -> None:
    """Remove graph inputs that are initializers: weights are constants of the graph, not feeds."""
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def initializer_names(model: onnx.ModelProto) -> set[str]:
    return {init.name for init in model.graph.initializer}

"""The suffix as two plain ONNX graphs that the ordinary (inference-only) onnxruntime runs.

- **train step**: (trainable tensors, features, targets) -> (loss, task output, one gradient per trainable
  tensor). Forward, loss and backward in one graph; the optimizer stays outside (numpy on the device).
- **eval**: (trainable tensors, features, targets) -> (loss, task output): the same forward without backward.

Frozen weights are initializers; the trainable tensors are graph inputs, so the device feeds its current
weights every step and no checkpoint format is needed. Only standard ``ai.onnx`` operators.

How (verified in shared/spikes/portable-training): a wrapper module runs ``torch.func.functional_call`` +
the loss + ``torch.autograd.grad``; ``torch.export._trace._export(pre_dispatch=False)`` traces it at ATen
level *through* autograd (the public ``torch.export.export`` traces pre-dispatch and cannot), torch's own
decompositions turn every ``*_backward`` op into forward ops, and the dynamo ONNX exporter writes the graph.
Two traps, both handled in ``DECOMPOSITIONS``: onnxscript's ``nll_loss_forward`` fakes ``total_weight = 1``
(gradients silently B times too large), and ``convolution_backward`` has no ONNX form. Gradients can be
wrong without any error, which is why ``fmfl.export.gradient_gate`` checks every export against torch.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from fmfl.export.graphs import GraphSignature, SuffixGraph

log = logging.getLogger(__name__)

aten = torch.ops.aten
#: trainable tensors are fed as inputs; their gradient output is named ``<tensor>` + GRAD_SUFFIX``
GRAD_SUFFIX = ".grad"


def grad_name(tensor: str) -> str:
    return tensor + GRAD_SUFFIX


def _conv_backward(
    grad_output: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, bias_sizes: Any, stride: list[int],
    padding: list[int], dilation: list[int], transposed: bool, output_padding: list[int], groups: int,
    output_mask: list[bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``aten.convolution_backward`` written with ``aten.convolution`` (it has no ONNX form).

    grad_input is the transposed convolution of grad_output with the weight; grad_weight is a convolution
    of the input (groups moved into the batch axis) with grad_output as the kernel, which also covers
    depthwise convolutions; grad_bias sums grad_output over batch and space.
    """
    if transposed:
        raise NotImplementedError("gradients through transposed convolutions are not supported")
    nd = input.dim() - 2
    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:
        extra = []
        for d in range(nd):
            k = weight.shape[2 + d]
            covered = (grad_output.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (k - 1) + 1
            extra.append(input.shape[2 + d] - covered)
        grad_input = aten.convolution.default(
            grad_output, weight, None, stride, padding, dilation, True, extra, groups)
    if output_mask[1]:
        n, c_in = input.shape[0], input.shape[1]
        per_group = c_in // groups
        spatial = list(input.shape[2:])
        x = (input.reshape([n, groups, per_group, *spatial])
             .permute([2, 1, 0, *range(3, 3 + nd)])
             .reshape([per_group, groups * n, *spatial]))
        kernel = grad_output.transpose(0, 1)
        gw = aten.convolution.default(
            x, kernel, None, list(dilation), list(padding), list(stride), False, [0] * nd, groups).transpose(0, 1)
        for d in range(nd):
            gw = gw.narrow(2 + d, 0, weight.shape[2 + d])
        grad_weight = gw.contiguous()
    if output_mask[2]:
        grad_bias = grad_output.sum([0, *range(2, 2 + nd)])
    return grad_input, grad_weight, grad_bias


def _decompositions() -> dict[Any, Callable[..., Any]]:
    from torch._decomp import decomposition_table

    table: dict[Any, Callable[..., Any]] = {
        op: fn for op, fn in decomposition_table.items()
        if isinstance(op, torch._ops.OpOverload) and "backward" in op.name()  # type: ignore[no-untyped-call]
    }
    table[aten.convolution_backward.default] = _conv_backward
    table[aten.nll_loss_forward.default] = decomposition_table[aten.nll_loss_forward.default]
    return table


DECOMPOSITIONS = _decompositions()


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The exporter's optimizer logs every pass at INFO; keep its warnings and errors only."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.WARNING)
    # "torchvision is not installed. Skipping torchvision::nms": fmfl exports no torchvision ops.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    saved.append((registration, registration.level))
    registration.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


class TrainStep(nn.Module):
    """(trainable..., features..., targets...) -> (loss, output, grad...) of a suffix, by functional call."""

    def __init__(self, suffix: SuffixGraph, tensors: list[str], with_grads: bool) -> None:
        super().__init__()
        self.suffix = suffix
        self.tensors = tensors
        self.with_grads = with_grads

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = len(self.tensors)
        if not self.with_grads:
            params = dict(zip(self.tensors, args[:k], strict=True))
            loss, output = torch.func.functional_call(self.suffix, params, args[k:], strict=False)
            return loss, output
        leaves = [p.detach().requires_grad_() for p in args[:k]]
        with torch.enable_grad():
            params = dict(zip(self.tensors, leaves, strict=True))
            loss, output = torch.func.functional_call(self.suffix, params, args[k:], strict=False)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        # A tensor the loss does not reach (e.g. a clamped temperature) gets a zero gradient, not None.
        full = [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads, strict=True)]
        return (loss.detach(), output.detach(), *full)


def step_signature(suffix: SuffixGraph, tensors: list[str], with_grads: bool) -> GraphSignature:
    inputs = tuple(tensors) + suffix.signature.inputs
    outputs = suffix.signature.outputs + (tuple(grad_name(t) for t in tensors) if with_grads else ())
    return GraphSignature(inputs, outputs)


def export_step_graph(
    suffix: SuffixGraph, tensors: list[str], params: list[torch.Tensor], feed: tuple[torch.Tensor, ...],
    path: Path, with_grads: bool,
) -> onnx.ModelProto:
    """Export the train-step (``with_grads``) or eval graph of ``suffix`` to ``path``, batch dimension dynamic.

    ``tensors`` are the trainable tensors' names relative to ``suffix``, ``params`` their current values,
    ``feed`` one example batch (features then targets, in ``suffix.signature.inputs`` order, batch >= 2).
    """
    module = TrainStep(suffix, tensors, with_grads).eval()
    signature = step_signature(suffix, tensors, with_grads)
    args = tuple(p.detach().clone() for p in params) + feed
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dynamic: list[dict[int, Any] | None] = [None] * len(params)
    dynamic += [{0: batch} if t.dim() > 0 else None for t in feed]
    with warnings.catch_warnings(), _quiet("onnxscript", "onnx_ir", "torch.onnx"):
        # The tracer and exporter warn about every Python-level shape check in HF code; the numeric gate
        # (fmfl.export.gradient_gate) is what decides whether the graph is right.
        warnings.simplefilter("ignore")
        from torch.export import _trace

        program = _trace._export(module, args, strict=False, pre_dispatch=False, dynamic_shapes=(tuple(dynamic),))
        program = program.run_decompositions(DECOMPOSITIONS)
        onnx_program = torch.onnx.export(
            program, args, dynamo=True, input_names=list(signature.inputs), output_names=list(signature.outputs),
            optimize=True, verbose=False,
        )
    assert onnx_program is not None
    onnx_program.save(str(path))
    return onnx.load(str(path))

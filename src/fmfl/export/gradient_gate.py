"""The numeric gate every export passes: the ONNX graphs under onnxruntime against torch autograd.

A wrong gradient raises no error anywhere (shared/STACK.md: the exporter's cross-entropy once made every
gradient B times too large while the loss looked right), so an export is refused unless the train-step
graph, run by the standard onnxruntime on a batch, reproduces torch's loss, task output and the gradient of
every trainable tensor, and the eval graph reproduces the loss and output. Checked at two batch sizes, so a
batch size baked into the graph is caught too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fmfl.errors import FmflError
from fmfl.export.graphs import SuffixGraph
from fmfl.export.train_step import TrainStep, step_signature

RTOL = 1e-4
ATOL = 1e-5


class GradientMismatch(FmflError):
    """An exported graph's loss, output or gradient differs from torch's: the export is refused."""


@dataclass(frozen=True)
class GateReport:
    """What the gate compared: the largest absolute difference per output, at each batch size checked."""

    batch_sizes: tuple[int, ...]
    max_abs_diff: dict[str, float]

    @property
    def worst(self) -> tuple[str, float]:
        name = max(self.max_abs_diff, key=lambda k: self.max_abs_diff[k])
        return name, self.max_abs_diff[name]


def torch_reference(
    suffix: SuffixGraph, tensors: list[str], params: list[torch.Tensor], feed: tuple[torch.Tensor, ...],
) -> dict[str, np.ndarray]:
    """Loss, output and gradients by plain torch autograd: the exported wrapper run eagerly, untraced."""
    values = TrainStep(suffix, tensors, with_grads=True)(*params, *feed)
    names = step_signature(suffix, tensors, with_grads=True).outputs
    return {name: value.detach().numpy() for name, value in zip(names, values, strict=True)}


def _run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {i.name: feeds[i.name] for i in session.get_inputs()}), strict=True))


def _compare(graph: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray], diffs: dict[str, float]) -> None:
    for name, expected in want.items():
        if name not in got:
            raise GradientMismatch(f"{graph}: output {name!r} is missing from the ONNX graph")
        actual = got[name]
        if actual.shape != expected.shape:
            raise GradientMismatch(
                f"{graph}: {name} has shape {actual.shape} under onnxruntime, {expected.shape} in torch")
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        worst = float(diff.max()) if diff.size else 0.0
        diffs[name] = max(diffs.get(name, 0.0), worst)
        bad = diff > ATOL + RTOL * np.abs(expected)
        if not np.isfinite(actual).all() or bad.any():
            at = np.unravel_index(int(np.argmax(diff - RTOL * np.abs(expected))), diff.shape) if diff.size else ()
            raise GradientMismatch(
                f"{graph}: {name} differs from torch autograd beyond rtol {RTOL:g} / atol {ATOL:g}: "
                f"max |difference| {worst:.3g} ({int(bad.sum())} of {diff.size} values, e.g. at index "
                f"{tuple(int(i) for i in at)}: onnxruntime {float(actual[at]):.6g}, torch {float(expected[at]):.6g}); "
                "the export is refused so that a wrong gradient never reaches a device"
            )


def check_graphs(
    suffix: SuffixGraph, tensors: list[str], params: list[torch.Tensor], batches: list[tuple[torch.Tensor, ...]],
    train_step: Path, eval_graph: Path,
) -> GateReport:
    """Run both graphs on each batch and compare with torch; raise ``GradientMismatch`` on any difference."""
    diffs: dict[str, float] = {}
    inputs = list(tensors) + list(suffix.signature.inputs)
    for feed in batches:
        want = torch_reference(suffix, tensors, params, feed)
        values = [p.detach().numpy() for p in params] + [t.numpy() for t in feed]
        feeds = dict(zip(inputs, values, strict=True))
        _compare(train_step.name, _run(train_step, feeds), want, diffs)
        outputs = suffix.signature.outputs
        _compare(eval_graph.name, _run(eval_graph, feeds), {k: want[k] for k in outputs}, {})
    return GateReport(tuple(int(b[0].shape[0]) for b in batches), diffs)

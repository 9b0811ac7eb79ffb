"""On-device training with the standard onnxruntime: the bundle's train-step graph plus a numpy optimizer.

The trainable tensors live in one flat float32 vector in manifest order (the update format); each tensor
is fed to the graphs as a zero-copy reshaped view of it. A step runs the train-step graph (loss, output,
one gradient per tensor), checks the gradients are finite, and lets the optimizer update the vector in
place. The eval graph is the same forward without the backward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fmfl.bundle.graph_ops import check_standard_ops
from fmfl.bundle.manifest import Manifest
from fmfl.edge_client.optimizers import Optimizer, make_optimizer
from fmfl.edge_client.runtime import check_runtime, open_session
from fmfl.errors import FmflError


class GraphMismatch(FmflError):
    """A bundle graph's inputs or outputs do not match what its manifest declares."""


class NonFiniteGradient(FmflError, FloatingPointError):
    """A train step produced a NaN or Inf loss or gradient; the weights were left as they were."""


def _check_io(path: Path, session: Any, inputs: list[str], outputs: list[str]) -> None:
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    if sorted(got_in) != sorted(inputs) or got_out != outputs:
        raise GraphMismatch(
            f"{path.name} does not match the manifest: inputs {got_in} (manifest: {inputs}), outputs {got_out} "
            f"(manifest: {outputs}); the bundle is inconsistent, re-export it"
        )


class Trainer:
    """The trainable suffix of a bundle: train-step and eval sessions, weights, and the optimizer."""

    def __init__(self, bundle: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.manifest = manifest
        step = manifest.train_step()
        check_runtime(manifest)
        self.tensor_names = [t.name for t in manifest.trainable]
        #: the batch inputs (features, then targets), without the trainable tensors
        self.input_names: list[str] = list(step["inputs"])
        self.output_names: list[str] = list(step["outputs"])
        self.grad_names: list[str] = list(step["gradients"])
        art = manifest.artifacts
        step_path, eval_path = bundle / str(art["train_step_model"]), bundle / str(art["eval_model"])
        for path in (step_path, eval_path):  # before onnxruntime parses them: a clear error, not a C++ one
            check_standard_ops(path)
        self.step_session = open_session(step_path, threads)
        self.eval_session = open_session(eval_path, threads)
        #: the execution providers the train step really runs on (CUDA first with onnxruntime-gpu on a GPU)
        self.providers: list[str] = list(self.step_session.get_providers())
        feeds = self.tensor_names + self.input_names
        _check_io(step_path, self.step_session, feeds, self.output_names + self.grad_names)
        _check_io(eval_path, self.eval_session, feeds, self.output_names)
        # Starts from the bundle's initial weights (global version 0), never from zeros a caller forgot to replace.
        self.weights = np.zeros(manifest.num_trainable, dtype=np.float32)
        initial = art.get("initial_weights")
        if initial:
            self.set_weights(np.load(bundle / str(initial)).astype(np.float32, copy=False))
        self.grads = np.zeros_like(self.weights)
        self._views = self._tensor_views(self.weights)
        self.optimizer: Optimizer = make_optimizer(manifest.optimizer, self.weights.size)

    def _tensor_views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {t.name: flat[t.offset : t.offset + t.size].reshape(t.shape) for t in self.manifest.trainable}

    def get_weights(self) -> np.ndarray:
        return self.weights.copy()

    def set_weights(self, flat: np.ndarray) -> None:
        if flat.shape != self.weights.shape:
            raise ValueError(f"weights must have shape {self.weights.shape}, got {flat.shape}")
        self.weights[:] = flat

    def reset_optimizer(self) -> None:
        """Fresh optimizer state (moments, step count): each round trains from the global model alone."""
        self.optimizer = make_optimizer(self.manifest.optimizer, self.weights.size, self.optimizer.lr)

    def set_learning_rate(self, lr: float) -> None:
        self.optimizer.lr = lr

    def _feed(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: batch[name] for name in self.input_names}
        feed.update(self._views)
        return feed

    def train_step(self, batch: dict[str, np.ndarray]) -> float:
        """One forward, backward and optimizer step; returns the loss. Non-finite results change nothing."""
        outputs = self.step_session.run(self.output_names + self.grad_names, self._feed(batch))
        loss = float(outputs[0])
        for tensor, grad in zip(self.manifest.trainable, outputs[2:], strict=True):
            if grad.shape != tensor.shape:
                raise GraphMismatch(f"the train step's gradient for {tensor.name} has shape {list(grad.shape)}, "
                                    f"the manifest says {list(tensor.shape)}; the bundle is inconsistent, re-export it")
            self.grads[tensor.offset : tensor.offset + tensor.size] = grad.reshape(-1)
        if not np.isfinite(loss) or not np.isfinite(self.grads).all():
            bad = [n for n, g in zip(self.tensor_names, outputs[2:], strict=True) if not np.isfinite(g).all()]
            raise NonFiniteGradient(
                f"local training produced a non-finite loss ({loss}) or gradient"
                + (f" (in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})" if bad else "")
                + "; the step was not applied: lower the learning rate or check the local data"
            )
        self.optimizer.step(self.weights, self.grads)
        return loss

    def eval_step(self, batch: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        """Loss and task output (e.g. logits) without touching the weights."""
        loss, output = self.eval_session.run(self.output_names, self._feed(batch))
        return float(loss), np.asarray(output)

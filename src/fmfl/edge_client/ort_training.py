"""ONNX Runtime on-device training, torch-free.

In the training build, even ``import onnxruntime`` tries ``from onnxruntime.training.ortmodule import
ORTModule`` (capi/onnxruntime_validation.py), and ``onnxruntime.training``'s ``__init__`` imports its
``optim`` package: both import torch (1.2 s, about 280 MB) where it is installed. The on-device API
(``onnxruntime.training.api``) needs only the C extension, so before onnxruntime is first imported we
register bare stand-ins for ``onnxruntime.training`` (with the real ``__path__``, so its submodules
load from the real files) and ``onnxruntime.training.ortmodule`` (empty, so the build check sees no
ORTModule): the torch-importing code never runs (shared/STACK.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.bundle.manifest import Manifest

_TRAINING_PKG = "onnxruntime.training"
_MISSING = (
    "onnxruntime-training is not installed: pip install 'fmfl[edge]' (onnxruntime-training-cpu==1.19.2); "
    "plain onnxruntime lacks the training API"
)


def _install_stubs() -> None:
    if _TRAINING_PKG in sys.modules:
        return  # already imported for real (a workstation process) or stubbed
    if "onnxruntime" in sys.modules:
        # Too late to keep torch out, but the API still works through the real package.
        return
    spec = importlib.util.find_spec("onnxruntime")  # top-level: locates without importing
    if spec is None or spec.origin is None:
        raise ImportError(_MISSING)
    training_dir = Path(spec.origin).parent / "training"
    if not (training_dir / "api").is_dir():
        raise ImportError(_MISSING)
    stub = types.ModuleType(_TRAINING_PKG)
    stub.__path__ = [str(training_dir)]
    sys.modules[_TRAINING_PKG] = stub
    sys.modules[f"{_TRAINING_PKG}.ortmodule"] = types.ModuleType(f"{_TRAINING_PKG}.ortmodule")


def onnxruntime_module() -> Any:
    """``import onnxruntime`` without letting the training build import torch. Use it instead of ``import``."""
    _install_stubs()
    ort = importlib.import_module("onnxruntime")
    # The training build logs every graph transformer at INFO on the default logger; keep warnings and up.
    ort.set_default_logger_severity(3)
    return ort


def training_api() -> Any:
    """``onnxruntime.training.api`` without importing torch."""
    onnxruntime_module()
    return importlib.import_module(f"{_TRAINING_PKG}.api")


def execution_device() -> tuple[str, list[str]]:
    """The training device and inference providers: CUDA when the CUDA build (``fmfl[edge-cuda]``) sees a GPU."""
    available = list(onnxruntime_module().get_available_providers())
    if "CUDAExecutionProvider" in available:
        return "cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return "cpu", ["CPUExecutionProvider"]


def session_options(threads: int | None) -> Any:
    ort = onnxruntime_module()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


class OrtTrainer:
    """The trainable suffix of a bundle as an ORT ``Module`` plus ``Optimizer``.

    Weights are exchanged as one flat float32 vector in the manifest's trainable order, which is
    ORT's contiguous-buffer order, so an update is ``get_weights() - received``.
    """

    def __init__(self, bundle: Path, manifest: Manifest, threads: int | None = None) -> None:
        self.bundle, self.manifest, self.threads = bundle, manifest, threads
        self._load()
        self.input_names: list[str] = list(self.module.input_names())
        size = self.module.get_parameters_size(trainable_only=True)
        if size != manifest.num_trainable:
            raise ValueError(f"checkpoint holds {size} trainable floats, manifest says {manifest.num_trainable}")

    def get_weights(self) -> np.ndarray:
        OrtValue = onnxruntime_module().OrtValue
        buffer = self.module.get_contiguous_parameters(trainable_only=True)
        return np.array(OrtValue(buffer).numpy(), dtype=np.float32, copy=True)

    def set_weights(self, flat: np.ndarray) -> None:
        OrtValue = onnxruntime_module().OrtValue
        if flat.shape != (self.manifest.num_trainable,):
            raise ValueError(f"weights must have shape ({self.manifest.num_trainable},), got {flat.shape}")
        value = OrtValue.ortvalue_from_numpy(np.ascontiguousarray(flat, dtype=np.float32))
        self.module.copy_buffer_to_parameters(value._ortvalue, trainable_only=True)

    def _load(self) -> None:
        api = training_api()
        art, bundle = self.manifest.artifacts, self.bundle
        self.state = api.CheckpointState.load_checkpoint(str(bundle / str(art["checkpoint"])))
        self.device, _ = execution_device()
        self.module = api.Module(
            str(bundle / str(art["training_model"])),
            self.state,
            str(bundle / str(art["eval_model"])),
            device=self.device,
            session_options=session_options(self.threads),
        )
        self.optimizer = api.Optimizer(str(bundle / str(art["optimizer_model"])), self.module)

    def reset_optimizer(self) -> None:
        """Fresh optimizer state (AdamW moments and step count back to zero), weights kept.

        Each federated round starts local training from the received global model; moments left from an
        earlier round (or lost in a restart) would make a device's update depend on its history. ORT keeps
        optimizer state inside the CheckpointState and a new Optimizer reuses it, so the state is reloaded.
        """
        weights = self.get_weights()
        self._load()
        self.set_weights(weights)

    def set_learning_rate(self, lr: float) -> None:
        self.optimizer.set_learning_rate(lr)

    def _feed(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [batch[name] for name in self.input_names]

    def train_step(self, batch: dict[str, np.ndarray]) -> float:
        """One forward, backward and optimizer step; returns the loss."""
        self.module.train()
        outputs = self.module(*self._feed(batch))
        self.optimizer.step()
        self.module.lazy_reset_grad()
        return float(outputs[0])

    def eval_step(self, batch: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        """Loss and task output (e.g. logits) without touching the weights."""
        self.module.eval()
        outputs = self.module(*self._feed(batch))
        return float(outputs[0]), np.asarray(outputs[1])


class PrefixRunner:
    """The frozen trunk of a split bundle as an ORT inference session: raw inputs -> cached features."""

    def __init__(self, bundle: Path, manifest: Manifest, threads: int | None = None) -> None:
        ort = onnxruntime_module()
        name = manifest.artifacts.get("prefix_model")
        if not name:
            raise ValueError("bundle has no frozen prefix (its spec trains from the first block)")
        _, providers = execution_device()
        self.session = ort.InferenceSession(str(bundle / name), session_options(threads), providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, {n: inputs[n] for n in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))

"""The bundle's optimizer in numpy, on the flat trainable vector (manifest order).

The graphs return gradients only; the update rule runs here so that the same bundle trains on every
onnxruntime build. The formulas are torch's (``torch.optim.AdamW`` and ``torch.optim.SGD``) with the
hyperparameters the manifest records; the tests compare against torch step by step. Updates are in place
and float32, as in torch. State (moments, step count) is reset each round by making a new optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fmfl.errors import FmflError

ADAMW_DEFAULTS: dict[str, Any] = {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01}
SGD_DEFAULTS: dict[str, Any] = {"momentum": 0.0, "weight_decay": 0.0}


class OptimizerError(FmflError):
    """The manifest names an optimizer or hyperparameter this device does not implement."""


class Optimizer(Protocol):
    lr: float

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update ``params`` in place from ``grads`` (both flat float32)."""


#: floats per slice of the AdamW update: four float32 slices of this size (params, grads, two moments) plus two
#: scratch ones stay in a CPU's L2 cache, so the dozen elementwise passes read memory once instead of twelve
#: times (about 2x faster on the 1.8M-float MiniLM last:1 set here)
CHUNK = 1 << 16


@dataclass
class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``."""

    size: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        self.t = 0
        self.m = np.zeros(self.size, dtype=np.float32)
        self.v = np.zeros(self.size, dtype=np.float32)
        self._a = np.empty(min(self.size, CHUNK), dtype=np.float32)
        self._b = np.empty(min(self.size, CHUNK), dtype=np.float32)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        b1, b2 = self.betas
        self.t += 1
        decay = np.float32(1.0 - self.lr * self.weight_decay)
        f1, f2, c1, c2 = np.float32(b1), np.float32(b2), np.float32(1.0 - b1), np.float32(1.0 - b2)
        inv_bias2_sqrt = np.float32(1.0 / (1.0 - b2**self.t) ** 0.5)
        step_size = np.float32(self.lr / (1.0 - b1**self.t))
        eps = np.float32(self.eps)
        for start in range(0, self.size, CHUNK):
            end = min(start + CHUNK, self.size)
            p, g, m, v = params[start:end], grads[start:end], self.m[start:end], self.v[start:end]
            a, b = self._a[: end - start], self._b[: end - start]
            if self.weight_decay:
                p *= decay
            m *= f1
            np.multiply(g, c1, out=a)
            m += a  # m = b1 m + (1 - b1) g
            v *= f2
            np.multiply(g, g, out=a)
            a *= c2
            v += a  # v = b2 v + (1 - b2) g^2
            np.sqrt(v, out=b)
            b *= inv_bias2_sqrt
            b += eps  # sqrt(v_hat) + eps, as torch adds eps after the bias correction
            np.divide(m, b, out=b)
            b *= step_size
            p -= b


@dataclass
class SGD:
    """Plain or momentum SGD with L2 weight decay, as ``torch.optim.SGD`` (no dampening, no Nesterov)."""

    size: int
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        self.buffer: np.ndarray | None = None

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        g = grads + np.float32(self.weight_decay) * params if self.weight_decay else grads
        if self.momentum:
            if self.buffer is None:
                self.buffer = np.array(g, dtype=np.float32, copy=True)
            else:
                self.buffer *= np.float32(self.momentum)
                self.buffer += g
            g = self.buffer
        params -= np.float32(self.lr) * g


def make_optimizer(spec: dict[str, Any], size: int, lr: float | None = None) -> Optimizer:
    """The optimizer a manifest's ``optimizer`` section describes, for ``size`` floats (``lr`` overrides)."""
    name = spec.get("name")
    rate = float(lr if lr is not None else spec["lr"])
    try:
        if name == "adamw":
            opts = {**ADAMW_DEFAULTS, **{k: spec[k] for k in ADAMW_DEFAULTS if k in spec}}
            b1, b2 = (float(b) for b in opts["betas"])
            return AdamW(size, rate, (b1, b2), float(opts["eps"]), float(opts["weight_decay"]))
        if name == "sgd":
            opts = {**SGD_DEFAULTS, **{k: spec[k] for k in SGD_DEFAULTS if k in spec}}
            return SGD(size, rate, float(opts["momentum"]), float(opts["weight_decay"]))
    except (TypeError, ValueError) as exc:
        raise OptimizerError(f"bad {name} hyperparameters in the manifest {spec}: {exc}") from exc
    raise OptimizerError(f"the bundle's optimizer {name!r} is not implemented on the device (adamw, sgd)")

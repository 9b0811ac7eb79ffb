"""optimizer.js against the Python device's numpy optimizers (src/fmfl/edge_client/optimizers.py): the same
float32 operations in the same order, so 25 steps on random gradients must give bit-identical weights."""

from __future__ import annotations

import numpy as np
import pytest
from support.web_training_node import run_js

from fmfl.edge_client.optimizers import make_optimizer

STEPS = 25
BODY = """
  const { spec, size, lr, params, grads } = input;
  const opt = device.makeOptimizer(spec, size, lr);
  const p = Float32Array.from(params);
  const trace = [];
  for (const g of grads) { opt.step(p, Float32Array.from(g)); trace.push(Array.from(p)); }
  output(trace);
"""


def _case(spec: dict[str, object], size: int, lr: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = rng.normal(0, 0.5, size).astype(np.float32)
    # Gradients across many magnitudes, tiny ones included (where eps and rounding matter most).
    grads = [(rng.normal(0, 1, size) * 10.0 ** rng.integers(-12, 2, size)).astype(np.float32) for _ in range(STEPS)]
    got = run_js(BODY, {"spec": spec, "size": size, "lr": lr, "params": params.tolist(),
                        "grads": [g.tolist() for g in grads]})
    opt = make_optimizer(spec, size, lr)
    ref = params.copy()
    for step, g in enumerate(grads):
        opt.step(ref, g)
        assert np.array_equal(np.array(got[step], dtype=np.float32), ref), f"{spec['name']} differs at step {step + 1}"


@pytest.mark.parametrize("spec", [
    {"name": "adamw", "lr": 0.01},
    {"name": "adamw", "lr": 0.001, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1},
    {"name": "adamw", "lr": 0.003, "weight_decay": 0.0},
])
def test_adamw_is_bit_identical_to_the_python_device(spec: dict[str, object]) -> None:
    _case(spec, 1000, 0.02, seed=1)


@pytest.mark.parametrize("spec", [
    {"name": "sgd", "lr": 0.1},
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.001},
])
def test_sgd_is_bit_identical_to_the_python_device(spec: dict[str, object]) -> None:
    _case(spec, 1000, 0.05, seed=2)


def test_unknown_optimizer_and_bad_hyperparameters_are_refused() -> None:
    got = run_js("""
      const msg = (f) => { try { f(); return null; } catch (e) { return [e.name, e.message]; } };
      output([msg(() => device.makeOptimizer({name: "lion", lr: 0.1}, 3)),
              msg(() => device.makeOptimizer({name: "adamw", lr: 0.1, betas: [0.9]}, 3)),
              msg(() => device.makeOptimizer({name: "sgd", lr: "fast"}, 3))]);
    """)
    assert got[0] == ["OptimizerError", 'the bundle\'s optimizer "lion" is not implemented on the device (adamw, sgd)']
    assert got[1][0] == "OptimizerError"
    assert "betas" in got[1][1]
    assert got[2][0] == "OptimizerError"
    assert "lr" in got[2][1]

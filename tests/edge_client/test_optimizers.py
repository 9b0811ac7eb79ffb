"""The device's numpy optimizers against torch.optim, step by step on the same gradients."""

from __future__ import annotations

import numpy as np
import pytest

from fmfl.edge_client.optimizers import CHUNK, AdamW, OptimizerError, make_optimizer

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("spec", [
    {"name": "adamw", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01},
    {"name": "adamw", "lr": 0.003, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.0},
    {"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0},
    {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
])
def test_numpy_optimizer_follows_torch_for_50_steps(spec: dict[str, object]) -> None:
    rng = np.random.default_rng(0)
    size = 2 * CHUNK + 7  # the update runs in CHUNK-sized slices: cross two boundaries and end on a partial one
    start = rng.standard_normal(size).astype(np.float32)
    grads = [rng.standard_normal(size).astype(np.float32) * rng.uniform(1e-6, 10) for _ in range(50)]
    ours = start.copy()
    optimizer = make_optimizer(spec, ours.size)
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    opts = {k: v for k, v in spec.items() if k != "name"}
    if "betas" in opts:
        opts["betas"] = tuple(opts["betas"])  # type: ignore[arg-type]
    kind = torch.optim.AdamW if spec["name"] == "adamw" else torch.optim.SGD
    reference = kind([param], **opts)  # type: ignore[arg-type]
    for g in grads:
        optimizer.step(ours, g)
        param.grad = torch.from_numpy(g.copy())
        reference.step()
        expected = param.detach().numpy()
        # float32 rounding differs with the order of operations; scale the absolute bound by the weights' size
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(expected).max())))
    assert ours.dtype == np.float32


def test_learning_rate_override_and_unknown_optimizers() -> None:
    optimizer = make_optimizer({"name": "adamw", "lr": 0.1}, 4, lr=0.5)
    assert isinstance(optimizer, AdamW)
    assert optimizer.lr == 0.5
    assert optimizer.weight_decay == 0.01
    with pytest.raises(OptimizerError, match=r"optimizer 'lamb' is not implemented on the device \(adamw, sgd\)"):
        make_optimizer({"name": "lamb", "lr": 0.1}, 4)
    with pytest.raises(OptimizerError, match="bad adamw hyperparameters"):
        make_optimizer({"name": "adamw", "lr": 0.1, "betas": ["x", 1]}, 4)

"""The presets, for real: pretrained weights load, and each preset exports to a working bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fmfl.bundle import verify_bundle  # noqa: E402
from fmfl.datasets.fashion_mnist import load_fashion_mnist  # noqa: E402
from fmfl.export.pipeline import ExportConfig, export_bundle  # noqa: E402
from fmfl.models.efficientnet_lite import EfficientNetLite0, load_pretrained_lite0  # noqa: E402

pytestmark = pytest.mark.slow


def _images(raw: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(raw).float().div(255.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x.repeat(1, 3, 1, 1) - 0.5) / 0.5


def _features(model: EfficientNetLite0, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model.features(images[i : i + 250]) for i in range(0, len(images), 250)]).numpy()


def _ridge_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Closed-form ridge regression onto one-hot labels: a linear probe with no tuning to bend."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    a, b = np.hstack([a, np.ones((len(a), 1))]), np.hstack([b, np.ones((len(b), 1))])
    targets = np.eye(10)[train_y]
    w = np.linalg.solve(a.T @ a + 10.0 * np.eye(a.shape[1]), a.T @ targets)
    return float(((b @ w).argmax(1) == test_y).mean())


def test_effnet_lite0_weights_are_really_pretrained() -> None:
    # Prepare: real Fashion-MNIST, 2000 train / 1000 test images at 64 px
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    tr_x, tr_y = _images(train.images[:2000], 64), train.labels[:2000]
    te_x, te_y = _images(test.images[:1000], 64), test.labels[:1000]
    torch.manual_seed(0)
    random_init = EfficientNetLite0().eval()

    # Execute
    pretrained_acc = _ridge_probe_accuracy(_features(load_pretrained_lite0(), tr_x), tr_y,
                                           _features(load_pretrained_lite0(), te_x), te_y)
    random_acc = _ridge_probe_accuracy(_features(random_init, tr_x), tr_y, _features(random_init, te_x), te_y)

    # Assert: ImageNet features transfer; a random trunk's do not, by a wide margin
    print(f"linear probe: pretrained {pretrained_acc:.3f}, random init {random_acc:.3f}")
    assert pretrained_acc > 0.75
    assert pretrained_acc > random_acc + 0.10


@pytest.mark.parametrize(("model", "task", "spec", "size"), [
    ("minilm", "classify", "head", None),
    ("minilm", "classify", "head+lora:r=8,alpha=16,targets=query,value,layers=2", None),
    ("effnet-lite0", "classify", "last:1", 64),
    ("dual-encoder", "contrastive", "head", 64),
])
def test_preset_exports_a_verified_split_bundle(tmp_path: Path, model: str, task: str, spec: str,
                                                size: int | None) -> None:
    out = tmp_path / "bundle"
    export_bundle(ExportConfig(model=model, task=task, train=spec, out=out, image_size=size,
                               num_labels=10 if task == "classify" else None, max_seq_len=32))
    manifest = verify_bundle(out)
    assert manifest.has_prefix
    # the device trains only the suffix: its train-step graph holds the suffix's frozen weights (for LoRA, the
    # trained layers' base weights), never the trunk's, which stay in the prefix
    step = manifest.files["train_step.onnx"]["size"]
    assert step < manifest.files["prefix.onnx"]["size"]
    assert manifest.graph["train_step"]["gate"]["max_abs_diff"] <= 1e-4

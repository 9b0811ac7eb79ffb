"""Local training and evaluation of the suffix, and the one local round every device kind runs.

``local_round`` (set weights, train, delta, transform, encode) is the single implementation behind the MQTT
device (``EdgeDevice.run_round``), ``fmfl client --once`` and the in-process simulation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fmfl.edge_client.data import LocalDataset
from fmfl.edge_client.trainer import Trainer
from fmfl.failpoints import failpoint
from fmfl.protocol import UpdateEncoder


@dataclass(frozen=True)
class LocalTrainConfig:
    """How much to train in one round: ``local_steps`` mini-batches, else ``local_epochs`` passes."""

    batch_size: int = 32
    lr: float = 1e-3
    local_epochs: int | None = 1
    local_steps: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or not (0 < self.lr < 10):
            raise ValueError(f"batch_size must be >= 1 and lr in (0, 10): {self}")
        if (self.local_steps is None) == (self.local_epochs is None):
            raise ValueError("give exactly one of local_steps and local_epochs")


@dataclass(frozen=True)
class TrainStats:
    steps: int
    samples: int
    mean_loss: float
    seconds: float


def _feeds(trainer: Trainer, inputs: dict[str, np.ndarray], labels: np.ndarray | None) -> dict[str, np.ndarray]:
    feeds = {n: np.ascontiguousarray(v) for n, v in inputs.items()}
    if "labels" in trainer.input_names:
        if labels is None:
            raise ValueError("this bundle trains a classifier: the local data needs labels")
        feeds["labels"] = labels.astype(np.int64)
    return feeds


def _min_batch(trainer: Trainer) -> int:
    # The contrastive loss needs negatives: a batch of one pair has none.
    return 1 if "labels" in trainer.input_names else 2


def train_locally(trainer: Trainer, data: LocalDataset, cfg: LocalTrainConfig) -> TrainStats:
    if len(data) < _min_batch(trainer):
        raise ValueError(f"not enough local training samples ({len(data)})")
    trainer.reset_optimizer()
    trainer.set_learning_rate(cfg.lr)
    start = time.perf_counter()
    losses: list[float] = []
    samples = 0
    epoch = 0
    while True:
        for batch in data.batches(cfg.batch_size, seed=cfg.seed * 1000 + epoch, shuffle=True):
            if len(batch.indices) < _min_batch(trainer):
                continue
            losses.append(trainer.train_step(_feeds(trainer, batch.inputs, batch.labels)))
            failpoint("client.train_step")  # @N: killed after N local steps, nothing committed
            samples += len(batch.indices)
            if cfg.local_steps is not None and len(losses) >= cfg.local_steps:
                break
        epoch += 1
        if cfg.local_steps is not None and len(losses) >= cfg.local_steps:
            break
        if cfg.local_epochs is not None and epoch >= cfg.local_epochs:
            break
    mean = float(np.mean(losses)) if losses else math.nan
    if not math.isfinite(mean):
        raise FloatingPointError(f"local training diverged (mean loss {mean}); lower the learning rate")
    return TrainStats(len(losses), samples, mean, time.perf_counter() - start)


def evaluate(trainer: Trainer, data: LocalDataset, batch_size: int = 64) -> dict[str, float]:
    """Mean loss and accuracy (classification), or in-batch image-to-text retrieval accuracy (contrastive)."""
    if len(data) < _min_batch(trainer):
        return {}
    total_loss, correct, seen = 0.0, 0, 0
    for batch in data.batches(batch_size, shuffle=False):
        n = len(batch.indices)
        if n < _min_batch(trainer):
            continue
        loss, output = trainer.eval_step(_feeds(trainer, batch.inputs, batch.labels))
        total_loss += loss * n
        target = batch.labels if "labels" in trainer.input_names else np.arange(n)
        correct += int((output.argmax(axis=1) == target).sum())
        seen += n
    return {"eval_loss": total_loss / seen, "eval_accuracy": correct / seen, "eval_samples": float(seen)}


#: a change applied to the delta before encoding (local DP noise on a device, an attack in a simulation)
DeltaTransform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LocalRound:
    """What one local round produced: the trained weights, the (transformed) delta, its encoding."""

    trained: np.ndarray
    delta: np.ndarray
    payload: bytes | None  # None when no encoder was given (the caller encodes later)
    stats: TrainStats


def local_round(
    trainer: Trainer, weights: np.ndarray, data: LocalDataset, cfg: LocalTrainConfig, encoder: UpdateEncoder | None,
    *, seed: int | None = None, transform: DeltaTransform | None = None,
) -> LocalRound:
    """Train from ``weights`` on ``data``, take the delta (in float64, so tiny steps survive), apply
    ``transform``, and encode it with ``encoder`` (whose error-feedback residual the caller keeps)."""
    trainer.set_weights(weights)
    stats = train_locally(trainer, data, cfg)
    trained = trainer.get_weights()
    delta = (trained.astype(np.float64) - weights.astype(np.float64)).astype(np.float32)
    if transform is not None:
        delta = np.asarray(transform(delta), dtype=np.float32)
    return LocalRound(trained, delta, None if encoder is None else encoder.encode(delta, seed=seed), stats)

"""Personalized evaluation: how well each device is served on its OWN data (its held-out split).

Three models per device, each scored on the device's held-out 20% (the split the device never trains on):
the federated global model; the device's local-only model (``baselines.local_only``); and the global model
after one local epoch of fine-tuning on the device's training split (the simplest personalization,
"FedAvg + fine-tuning", as in Yu, Bagdasaryan, Shmatikov, "Salvaging Federated Learning by Local
Adaptation", arXiv:2002.04758, 2020). Reported as the mean and the worst device.

For a classifier the score is accuracy; for the dual encoder it is the device's in-batch image-to-caption
retrieval accuracy (what ``evaluate`` measures for a contrastive bundle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fmfl.demo.device_data import DeviceData
from fmfl.edge_client.local_training import LocalTrainConfig, evaluate, train_locally
from fmfl.edge_client.trainer import Trainer

MODELS = ("global", "local_only", "global_finetuned")


def _score(trainer: Trainer, weights: np.ndarray, device: DeviceData) -> float:
    trainer.set_weights(weights)
    return float(evaluate(trainer, device.held_out, batch_size=256).get("eval_accuracy", float("nan")))


def personalized(trainer: Trainer, global_weights: np.ndarray, local_weights: Mapping[str, np.ndarray],
                 devices: Sequence[DeviceData], lr: float, batch_size: int, seed: int = 0) -> dict[str, Any]:
    per_device: dict[str, dict[str, float]] = {}
    for d in devices:
        scores = {"global": _score(trainer, global_weights, d),
                  "local_only": _score(trainer, local_weights[d.client_id], d)}
        trainer.set_weights(global_weights)
        train_locally(trainer, d.train, LocalTrainConfig(batch_size=batch_size, lr=lr, local_epochs=1, seed=seed))
        scores["global_finetuned"] = _score(trainer, trainer.get_weights(), d)
        per_device[d.client_id] = scores
    summary = {m: {"mean": float(np.mean([s[m] for s in per_device.values()])),
                   "worst": float(np.min([s[m] for s in per_device.values()]))} for m in MODELS}
    return {**summary, "per_device": per_device}

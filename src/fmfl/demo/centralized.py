"""The federated-vs-centralized baseline: the same trainable set trained on the pooled training data.

"Same" means the union of the clients' local training splits (each device holds out 20% for its own
evaluation), the same bundle, optimizer, batch size and learning rate, and the same number of sample
passes as the federated run made (sum over rounds of the participants' training samples times local
epochs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.bundle import Manifest
from fmfl.edge_client.data import LocalDataset
from fmfl.edge_client.device import DeviceConfig, EdgeDevice
from fmfl.edge_client.local_training import LocalTrainConfig, train_locally


def centralized_baseline(bundle: Path, manifest: Manifest, shards: list[Path], record: Any, cfg: Any, task: Any,
                         evaluator: Any, run_dir: Path) -> dict[str, Any]:
    parts: list[LocalDataset] = []
    for i, shard in enumerate(shards):
        # The clients' state folders hold their feature caches: reuse them (same split, same features).
        device = EdgeDevice(DeviceConfig(bundle=bundle, data=shard, state_dir=run_dir / "clients" / f"c{i:02d}" /
                                         "state", client_id=f"c{i:02d}", threads=None))
        parts.append(device.train_data)
        trainer = device.trainer
    pooled = LocalDataset(
        inputs={n: np.concatenate([np.asarray(p.inputs[n]) for p in parts]) for n in parts[0].inputs},
        labels=None if parts[0].labels is None else np.concatenate([p.labels for p in parts if p.labels is not None]),
    )
    ok_rounds = [r for r in record.rounds if r.get("status") == "ok"]
    share = sum(r["participants"] for r in ok_rounds) / max(cfg.clients, 1)
    passes = share * len(pooled) * cfg.local_epochs
    steps = max(1, round(passes / task.batch_size))
    trainer.set_weights(np.load(bundle / "initial_weights.npy"))
    start = time.perf_counter()
    train_locally(trainer, pooled, LocalTrainConfig(batch_size=task.batch_size, lr=task.lr, local_epochs=None,
                                                    local_steps=steps, seed=cfg.seed))
    accuracy = evaluator.accuracy(trainer.get_weights())
    return {"accuracy": accuracy, "samples": len(pooled), "sample_passes": int(passes), "steps": steps,
            "seconds": time.perf_counter() - start}

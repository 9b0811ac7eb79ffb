"""The baselines a user would compare a federated model against, measured on the demo's own data and test set.

1. **classic**: logistic regression on raw pixels (images) or TF-IDF unigrams+bigrams (text), on the pooled
   training data of the clients (the union of their training splits), scikit-learn;
2. **linear probe**: logistic regression on the frozen foundation model's features at the split point (the
   devices' cached prefix features; sequences mean-pooled over their attention mask), trained to convergence;
3. **centralized fine-tuning, tuned**: the same trainable set trained on the pooled training splits by the
   bundle's own train-step graph, with the learning rate and the number of epochs chosen on a validation split
   carved from that pooled data (``VALIDATION_FRACTION``), never on the test set;
4. **local-only**: each device alone on its own training split (the learning rate of 3; epochs chosen on a
   tenth of its own split, as a user alone would), scored on the global test set: mean and worst device.

Federated dense and federated with the default codec (5 and 6) are demo runs; ``benchmarks.demo_results``
puts all six in one table. Each device's split is read exactly as the device reads it (``EdgeDevice``: same
bundle, same 80/20 split, its own feature cache), so every baseline sees the data the federation saw.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.demo.device_data import DeviceData
from fmfl.edge_client.data import LocalDataset
from fmfl.edge_client.local_training import LocalTrainConfig, evaluate, train_locally
from fmfl.edge_client.trainer import Trainer

#: share of the pooled training splits held out to choose the centralized learning rate and epochs
VALIDATION_FRACTION = 0.1
#: learning rates tried by the tuned centralized baseline, by the bundle's optimizer: around the AdamW default
#: of 1e-3, and ten times higher for plain SGD, whose steps are not normalized by the gradient's scale
LEARNING_RATES = (3e-4, 1e-3, 3e-3)
LEARNING_RATES_BY_OPTIMIZER = {"adamw": LEARNING_RATES, "sgd": (3e-3, 1e-2, 3e-2)}
_SPLIT_SEED = 20_260


def read_devices(bundle: Path, shards: Sequence[Path], parts: Sequence[np.ndarray], run_dir: Path,
                 eval_fraction: float = 0.2, seed: int = 0) -> tuple[list[DeviceData], Trainer]:
    """Every device's splits through ``EdgeDevice`` (reusing the feature cache in its state folder) and one
    trainer for the bundle. ``parts[i]`` are the pooled training rows of shard ``i``, in the shard's order."""
    from fmfl.edge_client.device import DeviceConfig, EdgeDevice

    devices, trainer = [], None
    for i, (shard, rows) in enumerate(zip(shards, parts, strict=True)):
        cid = f"c{i:02d}"
        device = EdgeDevice(DeviceConfig(bundle=bundle, data=shard, state_dir=run_dir / "clients" / cid / "state",
                                         client_id=cid, eval_fraction=eval_fraction, seed=seed, threads=None))
        # The device's split, replayed on row numbers: LocalDataset.split draws the same permutation.
        index = LocalDataset(inputs={"row": np.asarray(rows)}, labels=None)
        train_index, _ = index.split(eval_fraction, seed)
        devices.append(DeviceData(cid, _in_memory(device.train_data), _in_memory(device.eval_data),
                                  np.asarray(train_index.inputs["row"])))
        trainer = device.trainer
    assert trainer is not None
    return devices, trainer


def _in_memory(data: LocalDataset) -> LocalDataset:
    return LocalDataset(inputs={k: np.asarray(v) for k, v in data.inputs.items()}, labels=data.labels,
                        label_names=data.label_names, source=data.source)


def pooled(parts: Sequence[LocalDataset]) -> LocalDataset:
    labels = [p.labels for p in parts if p.labels is not None]
    return LocalDataset(inputs={n: np.concatenate([np.asarray(p.inputs[n]) for p in parts]) for n in parts[0].inputs},
                        labels=np.concatenate(labels) if len(labels) == len(parts) else None)


def classic(train_x: Any, train_y: np.ndarray, test_x: Any, test_y: np.ndarray) -> dict[str, Any]:
    """Logistic regression on raw pixels scaled to [0, 1], or on TF-IDF of the texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    if isinstance(train_x, np.ndarray) and train_x.dtype != object:
        xtr = train_x.reshape(len(train_x), -1).astype(np.float32) / 255.0
        xte = np.asarray(test_x).reshape(len(test_x), -1).astype(np.float32) / 255.0
        what = "logistic regression on raw pixels"
    else:
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        xtr, xte = vectorizer.fit_transform(list(train_x)), vectorizer.transform(list(test_x))
        what = "TF-IDF (1-2 grams) + logistic regression"
    model = LogisticRegression(max_iter=1000, C=1.0)
    model.fit(xtr, train_y)
    return {"accuracy": float(model.score(xte, test_y)), "what": what, "samples": len(train_y),
            "converged": bool(np.all(model.n_iter_ < model.max_iter)), "seconds": time.perf_counter() - start}


def probe_features(inputs: dict[str, Any]) -> np.ndarray:
    """One vector per sample from the prefix features: pooled vectors as they are, sequences mean-pooled over
    the attention mask, image-tower features only for a dual encoder."""
    names = [n for n in inputs if n != "attention_mask" and not n.startswith("text.")]
    mask = inputs.get("attention_mask")
    columns = []
    for name in sorted(names):
        x = np.asarray(inputs[name], dtype=np.float32)
        if x.ndim == 3:
            m = (np.ones(x.shape[:2], np.float32) if mask is None else np.asarray(mask, np.float32))[..., None]
            x = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        columns.append(x.reshape(len(x), -1))
    return np.concatenate(columns, axis=1)


#: inverse L2 strengths (scikit-learn's C) the linear probe tries, chosen on the validation split: on the 1,280
#: standardized EfficientNet-Lite0 features at 96 px, C=1 scored 86.85% on validation where C=0.003 scored 88.87%
PROBE_C = (1e-3, 1e-2, 1e-1, 1.0)


def linear_probe(train: LocalDataset, test: LocalDataset, cs: Sequence[float] = PROBE_C) -> dict[str, Any]:
    """Logistic regression on standardized frozen features, each fit run until lbfgs converges; C is chosen on a
    validation split of ``train`` (the one the centralized baseline uses), then that model is scored on ``test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not cs:
        raise ValueError("linear_probe needs at least one C to try")
    start = time.perf_counter()
    fit, validation = train.split(VALIDATION_FRACTION, _SPLIT_SEED)
    x_fit, x_val = probe_features(fit.inputs), probe_features(validation.inputs)
    tried, best, converged = [], None, True
    for c in cs:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=c)).fit(x_fit, fit.labels)
        score = float(model.score(x_val, validation.labels))
        converged &= bool(np.all(model[-1].n_iter_ < 3000))
        tried.append({"C": c, "validation_accuracy": score})
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    accuracy = float(best[2].score(probe_features(test.inputs), test.labels))
    return {"accuracy": accuracy, "C": best[1], "validation_accuracy": best[0], "tried": tried, "samples": len(fit),
            "converged": converged, "seconds": time.perf_counter() - start}


def fit_with_validation(trainer: Trainer, initial: np.ndarray, train: LocalDataset, validation: LocalDataset,
                        lrs: Sequence[float], max_epochs: int, batch_size: int, seed: int) -> dict[str, Any]:
    """Train from ``initial`` for up to ``max_epochs`` at each learning rate (optimizer state kept across the
    epochs of one run), scoring ``validation`` after every epoch; return the weights and settings of the best
    (learning rate, epoch) and every validation score seen."""
    best: dict[str, Any] = {"validation_accuracy": -1.0}
    tried = []
    for lr in lrs:
        trainer.set_weights(initial)
        for epoch in range(1, max_epochs + 1):
            _train_epoch(trainer, train, lr, batch_size, seed * 1000 + epoch, reset=epoch == 1)
            score = float(evaluate(trainer, validation, batch_size=256).get("eval_accuracy", 0.0))
            tried.append({"lr": lr, "epochs": epoch, "validation_accuracy": score})
            if score > best["validation_accuracy"]:
                best = {"lr": lr, "epochs": epoch, "validation_accuracy": score, "weights": trainer.get_weights()}
    best["tried"] = tried
    return best


def _train_epoch(trainer: Trainer, data: LocalDataset, lr: float, batch_size: int, seed: int, *, reset: bool) -> None:
    if reset:
        train_locally(trainer, data, LocalTrainConfig(batch_size=batch_size, lr=lr, local_epochs=1, seed=seed))
        return
    # One more epoch continuing the same optimizer state: train_locally would reset it.
    for batch in data.batches(batch_size, seed=seed, shuffle=True):
        feeds = {n: np.ascontiguousarray(v) for n, v in batch.inputs.items()}
        if "labels" in trainer.input_names:
            assert batch.labels is not None
            feeds["labels"] = batch.labels.astype(np.int64)
        trainer.train_step(feeds)


def centralized_tuned(trainer: Trainer, initial: np.ndarray, devices: Sequence[DeviceData], evaluator: Any,
                      max_epochs: int, batch_size: int) -> dict[str, Any]:
    start = time.perf_counter()
    train, validation = pooled([d.train for d in devices]).split(VALIDATION_FRACTION, _SPLIT_SEED)
    rates = LEARNING_RATES_BY_OPTIMIZER[trainer.manifest.optimizer["name"]]
    best = fit_with_validation(trainer, initial, train, validation, rates, max_epochs, batch_size, 0)
    weights = best.pop("weights")
    return {**best, "accuracy": evaluator.accuracy(weights), "samples": len(train), "max_epochs": max_epochs,
            "seconds": time.perf_counter() - start}


def local_only(trainer: Trainer, initial: np.ndarray, devices: Sequence[DeviceData], evaluator: Any, lr: float,
               max_epochs: int, batch_size: int) -> dict[str, Any]:
    """Each device trains alone; returns the global-test accuracies and each device's weights (for the
    personalized evaluation)."""
    start = time.perf_counter()
    per_device, weights = {}, {}
    for d in devices:
        train, validation = d.train.split(VALIDATION_FRACTION, _SPLIT_SEED)
        best = fit_with_validation(trainer, initial, train, validation, (lr,), max_epochs, batch_size, 0)
        weights[d.client_id] = best["weights"]
        per_device[d.client_id] = {"accuracy": evaluator.accuracy(best["weights"]), "epochs": best["epochs"]}
    scores = [v["accuracy"] for v in per_device.values()]
    return {"mean": float(np.mean(scores)), "worst": float(np.min(scores)), "per_device": per_device, "lr": lr,
            "seconds": time.perf_counter() - start, "weights": weights}


#: epochs the tuned centralized and local-only baselines may run (the validation split picks the best one);
#: text and dual-encoder epochs run transformer layers, hence fewer
MAX_EPOCHS = {"vision": 12, "text": 4, "multimodal": 6}


def measure_baselines(*, task: Any, data: Any, bundle: Path, shards: Sequence[Path], parts: Sequence[np.ndarray],
                      run_dir: Path, evaluator: Any, global_weights: np.ndarray, seed: int,
                      progress: Any = None) -> dict[str, Any]:
    """Baselines 1-4 and the personalized evaluation for one demo run (``fmfl demo --baselines``)."""
    from fmfl.demo.personalized import personalized

    def note(message: str) -> None:
        if progress is not None:
            progress.note(message)

    out: dict[str, Any] = {}
    devices, trainer = read_devices(bundle, shards, parts, run_dir, seed=seed)
    initial = np.load(bundle / "initial_weights.npy")
    rows = np.concatenate([d.train_rows for d in devices])
    note("baseline 1/4: classic model on the pooled training splits")
    out["classic"] = classic(_rows(data.train_x, rows), np.asarray(data.train_y)[rows], data.test_x,
                             np.asarray(data.test_y))
    note("baseline 2/4: linear probe on the frozen features")
    train_features = pooled([d.train for d in devices])
    train_features = LocalDataset(inputs=train_features.inputs, labels=np.asarray(data.train_y)[rows])
    if hasattr(evaluator, "data"):
        test_features = evaluator.data
    else:
        test_features = LocalDataset(inputs=evaluator.image_features, labels=evaluator.test_y)
    out["linear_probe"] = linear_probe(train_features, test_features)
    epochs = MAX_EPOCHS.get(task.name, 4)
    note(f"baseline 3/4: centralized fine-tuning, lr and epochs (<= {epochs}) chosen on validation")
    out["centralized_tuned"] = centralized_tuned(trainer, initial, devices, evaluator, epochs, task.batch_size)
    note("baseline 4/4: local-only training on each device")
    local = local_only(trainer, initial, devices, evaluator, out["centralized_tuned"]["lr"], epochs,
                       task.batch_size)
    local_weights = local.pop("weights")
    out["local_only"] = local
    note("personalized evaluation on each device's held-out split")
    out["personalized"] = personalized(trainer, global_weights, local_weights, devices, task.lr, task.batch_size,
                                       seed)
    return out


def _rows(x: Any, rows: np.ndarray) -> Any:
    return x[rows] if isinstance(x, np.ndarray) else [x[int(i)] for i in rows]

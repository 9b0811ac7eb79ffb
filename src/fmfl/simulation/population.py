"""The federation a simulation runs on: the real bundle, the clients' shards as suffix inputs, the referee.

Built once and shared by every run of a sweep. Everything is the code a real deployment runs: the demo's
task definition and cached bundle (``fmfl.demo.bundles.ensure_bundle``), the Dirichlet label-skew split
(``fmfl.datasets.partition``), the device's preprocessing (images, tokenized glosses, or images with the
captions the demo writes for the dual encoder), the frozen prefix's features through
``fmfl.edge_client.features.suffix_dataset`` (cached on disk per client shard, keyed by bundle id and a
hash of the shard, so the trunk runs once per shard across all runs and processes), the device's 80/20
train/eval split, and the demo's central ``Evaluator`` on the test set. Only MQTT is left out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmfl.bundle import Manifest
from fmfl.datasets.captions import caption_labels
from fmfl.datasets.partition import dirichlet_partition
from fmfl.demo.bundles import ensure_bundle
from fmfl.demo.evaluate import Evaluator, image_inputs
from fmfl.demo.tasks import TASKS, ZERO_SHOT_NAMES, DemoData
from fmfl.edge_client.data import LocalDataset
from fmfl.edge_client.data.preprocessing import Preprocessing
from fmfl.edge_client.data.text import tokenize
from fmfl.edge_client.device import resolved_preprocessing
from fmfl.edge_client.features import suffix_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientShard:
    """One simulated device's local training data, already mapped through the frozen prefix."""

    client_id: str
    train: LocalDataset

    @property
    def num_samples(self) -> int:
        """What the device reports as its update's weight (its training split's size)."""
        return len(self.train)


@dataclass(frozen=True)
class Population:
    """A fixed federation: bundle, client shards, central test-set evaluator and the initial weights."""

    bundle: Path
    manifest: Manifest
    clients: tuple[ClientShard, ...]
    evaluator: Evaluator
    initial: np.ndarray
    num_classes: int
    seed: int
    alpha: float
    #: seconds spent building it (bundle, prefix features or cache reads, test features)
    setup_seconds: float

    @property
    def client_ids(self) -> tuple[str, ...]:
        return tuple(c.client_id for c in self.clients)


def carve_validation(data: DemoData, fraction: float, seed: int) -> DemoData:
    """``data`` with a seeded random ``fraction`` of its training set moved into the test slot (a validation
    set for choosing settings); the real test set is dropped so nothing downstream can score on it."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    n = len(data.train_y)
    order = np.random.default_rng(_VALIDATION_SEED + seed).permutation(n)
    val, train = np.sort(order[: round(fraction * n)]), np.sort(order[round(fraction * n):])
    return DemoData(_rows(data.train_x, train), data.train_y[train], _rows(data.train_x, val), data.train_y[val],
                    data.label_names)


def _rows(x: np.ndarray | list[str], index: np.ndarray) -> np.ndarray | list[str]:
    """Rows ``index`` of images (an array) or texts (a list)."""
    return x[index] if isinstance(x, np.ndarray) else [x[int(i)] for i in index]


def _raw_shard(x: np.ndarray | list[str], labels: np.ndarray, pre: Preprocessing,
               captions: list[str] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """A shard's model inputs as the device's preprocessing makes them, and a hash of its content (cache key).

    ``captions``: the image-caption pairs of a dual encoder (images in ``x``), as the demo's shard writes them.
    """
    if captions is not None:
        assert pre.image is not None and pre.text is not None
        assert isinstance(x, np.ndarray)
        digest = hashlib.sha256(x.tobytes() + "\n".join(captions).encode()).hexdigest()
        return {pre.image.input_name: image_inputs(x, pre), **tokenize(captions, pre.text)}, digest
    if isinstance(x, np.ndarray):
        assert pre.image is not None
        digest = hashlib.sha256(x.tobytes() + labels.tobytes()).hexdigest()  # the key vision caches always had
        return {pre.image.input_name: image_inputs(x, pre)}, digest
    assert pre.text is not None
    digest = hashlib.sha256("\n".join(x).encode() + labels.tobytes()).hexdigest()
    return dict(tokenize(x, pre.text)), digest


#: keeps the validation draw independent of the partition's and the devices' draws from the same seed
_VALIDATION_SEED = 7_919


def build_population(
    *,
    task: str = "vision",
    clients: int = 10,
    alpha: float = 0.5,
    seed: int = 0,
    max_samples: int | None = None,
    cache_dir: Path = Path(".fmfl-cache"),
    eval_fraction: float = 0.2,
    threads: int | None = None,
    validation_fraction: float = 0.0,
    train_spec: str | None = None,
    image_size: int | None = None,
    optimizer: str | None = None,
) -> Population:
    """The demo task ``task`` split over ``clients`` devices as ``fmfl demo`` splits it (same seed, same shards).

    ``max_samples`` subsamples the training set (test: a fifth, at least 1,000), as ``--max-samples`` does.
    ``validation_fraction > 0`` carves that share of the training set out (``carve_validation``) before the
    split and makes it the referee instead of the test set: settings are chosen on it, never on the test set.
    ``train_spec``, ``image_size`` and ``optimizer`` (the devices' local optimizer, ``adamw`` or ``sgd``) replace
    the task's trainable set, input size and optimizer (another cached bundle).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    spec = TASKS[task]
    if clients < 1 or alpha <= 0:
        raise ValueError(f"clients must be >= 1 and alpha > 0, got {clients}, {alpha}")
    start = time.perf_counter()
    data = spec.load(seed, max_samples)
    if validation_fraction > 0:
        data = carve_validation(data, validation_fraction, seed)
    bundle, manifest, _ = ensure_bundle(cache_dir, spec.model, spec.export_task, train_spec or spec.train_spec,
                                        data.label_names, image_size or spec.image_size, spec.max_seq_len, spec.lr,
                                        optimizer or spec.optimizer)
    pre = Preprocessing.from_manifest(resolved_preprocessing(bundle, manifest))
    parts = dirichlet_partition(data.train_y, clients, alpha, seed)
    shards = []
    for i, index in enumerate(parts):
        labels = data.train_y[index].astype(np.int64)
        # The dual encoder's shards are captioned as fmfl demo writes them (seed + client index), unlabelled.
        captions = caption_labels(labels, seed=seed + i) if spec.export_task == "contrastive" else None
        inputs, digest = _raw_shard(_rows(data.train_x, index), labels, pre, captions)
        raw = LocalDataset(inputs=inputs, labels=None if captions else labels, label_names=data.label_names,
                           source=f"shard {i}")
        suffix, info = suffix_dataset(bundle, manifest, raw, data_hash=digest, cache_dir=cache_dir / "features",
                                      threads=threads)
        log.info("client %d: %d samples, prefix cache %s", i, len(raw), info["cache"])
        train, _held_out = suffix.split(eval_fraction, seed)  # the device's own 80/20 split (DeviceConfig.seed)
        # Memory-mapped cache files are read once here; every round then trains from RAM.
        train = LocalDataset(inputs={k: np.array(v) for k, v in train.inputs.items()}, labels=train.labels,
                             label_names=train.label_names, source=train.source)
        shards.append(ClientShard(f"c{i:02d}", train))
    evaluator = Evaluator(bundle, manifest, data.test_x, data.test_y, ZERO_SHOT_NAMES, threads=threads)
    initial = np.load(bundle / str(manifest.artifacts["initial_weights"])).astype(np.float32)
    return Population(bundle, manifest, tuple(shards), evaluator, initial, len(data.label_names), seed, alpha,
                      time.perf_counter() - start)

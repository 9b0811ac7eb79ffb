"""In-process federated rounds with every real part except MQTT: device training, codec, rule, referee.

One round, as the MQTT deployment runs it (``fmfl.edge_client.device.EdgeDevice.run_round`` and
``fmfl.aggregator.core.ingest``), with the transport replaced by function calls:

0. the clients that join the round are drawn (``sample_clients``): every client when ``participation`` is 1
   (the default), else each one independently with probability ``participation`` (Poisson sampling, seeded
   by the run's seed and the round); only those take steps 1-4;
1. each joining client runs the device's local round (``local_training.local_round``: the bundle's train-step
   graph, fresh optimizer state, the task's seed + round for shuffling) from the global weights on its shard;
2. its delta ``trained - global`` goes through the optional per-client ``transform`` hook (the device's own
   processing, e.g. local differential privacy clipping and noise);
3. the ``attack`` replaces the deltas of the malicious clients that joined (model poisoning; data poisoning
   already happened in step 1 through poisoned labels) - so crafted updates bypass ``transform``, as a real
   attacker's would;
4. each delta is encoded by the client's own ``UpdateEncoder`` (error-feedback residual kept across rounds),
   decoded by ``decode_update`` as the gateway does, and offered to the ``Strategy`` with the client's sample
   count as weight; a ``RejectedUpdate`` (e.g. the ``UpdateLimits.max_norm`` bound) is logged, not fatal;
5. the rule aggregates; with a ``downlink_codec`` the gateway's ``DownlinkCompressor`` re-bases the result
   (the new version is the previous one plus exactly what the lossy delta decodes to, the rest kept in the
   server's error-feedback residual: docs/protocol.md 2b), so the devices train from the weights they would
   really hold; the demo's central ``Evaluator`` scores the new global model on the test set.

A round that nobody joined, or in which every update was rejected, keeps the global model (the gateway
would close it with no quorum). Determinism: the same population, config and ORT thread count give
bit-identical weights.
"""

from __future__ import annotations

import functools
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmfl.aggregation.catalog import make_strategy
from fmfl.aggregation.strategy import Strategy
from fmfl.aggregation.validation import RejectedUpdate
from fmfl.aggregator.core.downlink import DownlinkCompressor
from fmfl.edge_client.data import LocalDataset
from fmfl.edge_client.local_training import DeltaTransform, LocalRound, LocalTrainConfig, local_round
from fmfl.edge_client.trainer import Trainer
from fmfl.protocol import Limits, UpdateEncoder, decode_update
from fmfl.protocol.codec.schedule import CodecSchedule
from fmfl.simulation.attacks import Attack, NoAttack
from fmfl.simulation.population import Population


@dataclass(frozen=True)
class UpdateContext:
    """What a per-client ``transform`` knows about the update it is given."""

    client_id: str
    round: int
    num_samples: int
    malicious: bool
    #: derived from the run's seed, the client and the round: use ``rng()`` for reproducible noise
    seed: int

    def rng(self) -> np.random.Generator:
        """A generator seeded by ``seed``: the same noise for the same run seed, client and round."""
        return np.random.default_rng(self.seed)


#: ``(delta, context) -> delta to send``: runs on every client's honestly trained delta (float32, 1-D)
UpdateTransform = Callable[[np.ndarray, UpdateContext], np.ndarray]


@dataclass(frozen=True)
class SimulationConfig:
    """One run. ``strategy`` is a registry name (``make_strategy(strategy, **strategy_options)``) or a
    zero-argument factory returning a fresh ``Strategy``."""

    strategy: str | Callable[[], Strategy] = "fedavg"
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    #: an uplink codec, or a ``CodecSchedule`` ("CODEC@ROUNDS,...,CODEC": density warm-up, then the last codec)
    codec: str = "dense"
    #: the gateway's ``--downlink-codec`` (``dense``: devices receive the rule's model unchanged)
    downlink_codec: str = "dense"
    rounds: int = 40
    #: fraction of the clients that are malicious; ``round(fraction * clients)`` ids drawn with ``seed``
    malicious_fraction: float = 0.0
    attack: Attack = field(default_factory=NoAttack)
    transform: UpdateTransform | None = None
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    #: score the global model on the test set every this many rounds (0: round 0 and the last round only)
    eval_every: int = 0
    threads: int | None = 1
    #: Poisson client sampling: each client joins each round independently with this probability, drawn from
    #: ``seed`` and the round (McMahan et al. 2018's sampling, which ``dp-fedavg``'s default accountant assumes);
    #: 1.0 = every client every round. A round nobody joined keeps the global model.
    participation: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.participation <= 1.0:
            raise ValueError(f"participation must be in (0, 1], got {self.participation}")
        if self.rounds < 1 or self.local_epochs < 1 or self.batch_size < 1 or self.eval_every < 0:
            raise ValueError(f"rounds, local_epochs and batch_size must be >= 1, eval_every >= 0: {self}")
        if not 0.0 <= self.malicious_fraction < 1.0:
            raise ValueError(f"malicious_fraction must be in [0, 1), got {self.malicious_fraction}")

    @property
    def strategy_name(self) -> str:
        return self.strategy if isinstance(self.strategy, str) else getattr(self.strategy, "__name__", "custom")


@dataclass(frozen=True)
class RoundLog:
    """What happened in one simulated round: who was accepted or refused, the norms sent, the test score."""

    round: int
    accepted: tuple[str, ...]
    #: client id -> ``RejectReason`` value
    rejected: Mapping[str, str]
    #: client id -> L2 norm of the delta it sent (before encoding)
    norms: Mapping[str, float]
    accuracy: float | None
    seconds: float
    #: the payload of the version's downlink delta (0: no delta, devices would take the dense model)
    downlink_bytes: int = 0


@dataclass
class SimulationResult:
    """One run's outcome: test accuracy by round, the per-round logs, the malicious ids, the final weights."""

    config: SimulationConfig
    malicious: tuple[str, ...]
    #: round -> test accuracy (round 0: the initial weights)
    accuracy: dict[int, float]
    rounds: list[RoundLog]
    final_weights: np.ndarray
    seconds: float

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[max(self.accuracy)]

    def rejected_count(self, *, malicious: bool) -> int:
        """How many updates of malicious (or benign) clients the rule refused, over all rounds."""
        bad = set(self.malicious)
        return sum((cid in bad) == malicious for log in self.rounds for cid in log.rejected)

    @property
    def seconds_per_round(self) -> float:
        return sum(r.seconds for r in self.rounds) / max(len(self.rounds), 1)


def choose_malicious(client_ids: tuple[str, ...], fraction: float, seed: int) -> tuple[str, ...]:
    """``round(fraction * n)`` client ids drawn without replacement by ``seed``, sorted; fixed for the run."""
    k = round(fraction * len(client_ids))
    if k == 0:
        return ()
    chosen = np.random.default_rng(seed).choice(len(client_ids), size=k, replace=False)
    return tuple(sorted(client_ids[int(i)] for i in chosen))


def _client_seed(*parts: object) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def sample_clients(client_ids: tuple[str, ...], participation: float, seed: int, round_: int) -> tuple[str, ...]:
    """The clients that join round ``round_``: each independently with probability ``participation`` (Poisson
    sampling), from a generator seeded by ``(seed, round_)``; all of them when ``participation`` is 1."""
    if participation >= 1.0:
        return client_ids
    draws = np.random.default_rng(_client_seed(seed, "participation", round_)).random(len(client_ids))
    return tuple(cid for cid, u in zip(client_ids, draws, strict=True) if u < participation)


class _Training:
    """One trainer shared by all simulated devices: ``train_locally`` resets the optimizer state at the start
    of every local round, so a device's update never depends on who trained before."""

    def __init__(self, population: Population, config: SimulationConfig) -> None:
        self.trainer = Trainer(population.bundle, population.manifest, config.threads)
        self.config = config

    def round(self, weights: np.ndarray, data: LocalDataset, round_: int, encoder: UpdateEncoder | None, seed: int,
              transform: DeltaTransform | None) -> LocalRound:
        cfg = LocalTrainConfig(batch_size=self.config.batch_size, lr=self.config.lr,
                               local_epochs=self.config.local_epochs, seed=self.config.seed + round_)
        return local_round(self.trainer, weights, data, cfg, encoder, seed=seed, transform=transform)


def _apply(transform: UpdateTransform, ctx: UpdateContext, delta: np.ndarray) -> np.ndarray:
    return transform(delta, ctx)


def _strategy(config: SimulationConfig) -> Strategy:
    if isinstance(config.strategy, str):
        return make_strategy(config.strategy, **dict(config.strategy_options))
    if config.strategy_options:
        raise ValueError("strategy_options apply to a strategy name; a factory takes none")
    return config.strategy()


def _with_residual(encoder: UpdateEncoder, previous: UpdateEncoder) -> UpdateEncoder:
    """``encoder`` holding ``previous``'s error-feedback residual, as a device carries it into the next task."""
    encoder.restore_residual(np.asarray(previous.residual))
    return encoder


def run_simulation(population: Population, config: SimulationConfig) -> SimulationResult:
    """Run ``config.rounds`` federated rounds on ``population``; see the module docstring."""
    start = time.perf_counter()
    strategy = _strategy(config)
    ids = population.client_ids
    malicious = choose_malicious(ids, config.malicious_fraction, config.seed)
    training = _Training(population, config)
    size = population.initial.size
    tensor_sizes = [t.size for t in population.manifest.trainable]
    limits = Limits.for_vector_size(size)
    schedule = CodecSchedule.parse(config.codec)
    codec = schedule.codec_for_round(1)
    encoders = {cid: UpdateEncoder(codec, size, tensor_sizes, seed=_client_seed(cid)) for cid in ids}
    shards = {c.client_id: c for c in population.clients}
    local_data = {cid: shards[cid].train for cid in ids}
    if config.attack.poisons_data:
        for cid in malicious:
            clean = shards[cid].train
            assert clean.labels is not None
            local_data[cid] = LocalDataset(
                inputs=clean.inputs, labels=config.attack.poison_labels(clean.labels, population.num_classes),
                label_names=clean.label_names, source=clean.source)
    downlink = DownlinkCompressor(config.downlink_codec, size)
    weights = population.initial.copy()
    accuracy = {0: population.evaluator.accuracy(weights)}
    logs: list[RoundLog] = []
    for r in range(1, config.rounds + 1):
        t0 = time.perf_counter()
        joined = sample_clients(ids, config.participation, config.seed, r)
        if schedule.codec_for_round(r) != codec:  # a density warm-up phase ended: the devices keep their residual
            codec = schedule.codec_for_round(r)
            encoders = {cid: _with_residual(UpdateEncoder(codec, size, tensor_sizes, seed=_client_seed(cid)), e)
                        for cid, e in encoders.items()}
        honest: dict[str, np.ndarray] = {}
        payloads: dict[str, bytes | None] = {}
        for cid in joined:
            transform = None
            if config.transform is not None:
                ctx = UpdateContext(cid, r, shards[cid].num_samples, cid in malicious,
                                    _client_seed(config.seed, cid, r))
                transform = functools.partial(_apply, config.transform, ctx)
            # A malicious client's delta may still be replaced by the attack (step 3): encoded after it.
            encoder = None if cid in malicious else encoders[cid]
            local = training.round(weights, local_data[cid], r, encoder, _client_seed(cid, r), transform)
            honest[cid], payloads[cid] = local.delta, local.payload
        sent = dict(honest)
        attackers = tuple(cid for cid in malicious if cid in honest)
        sent.update(config.attack.craft(honest, attackers) if attackers else {})
        strategy.begin_round(weights)
        accepted, rejected, norms = [], {}, {}
        for cid in joined:
            norms[cid] = float(np.linalg.norm(sent[cid].astype(np.float64)))
            payload = payloads[cid]
            if payload is None:
                payload = encoders[cid].encode(sent[cid], seed=_client_seed(cid, r))
            update = decode_update(payload, size, limits)
            try:
                strategy.accept(update, float(shards[cid].num_samples), cid)
                accepted.append(cid)
            except RejectedUpdate as exc:
                rejected[cid] = exc.reason
        downlink.forget()
        if accepted:
            weights = downlink.rebase(weights, r - 1, strategy.aggregate())
        score = None
        if r == config.rounds or (config.eval_every and r % config.eval_every == 0):
            score = accuracy[r] = population.evaluator.accuracy(weights)
        logs.append(RoundLog(r, tuple(accepted), rejected, norms, score, time.perf_counter() - t0,
                             len(downlink.delta.payload) if downlink.delta is not None else 0))
        if not np.isfinite(weights).all() or (score is not None and math.isnan(score)):
            raise FloatingPointError(f"round {r}: the global model is no longer finite")
    return SimulationResult(config, malicious, accuracy, logs, weights, time.perf_counter() - start)

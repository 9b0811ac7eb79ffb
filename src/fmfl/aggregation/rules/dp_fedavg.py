"""DP-FedAvg: client-level differential privacy at the aggregator, with optional adaptive clipping.

McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language Models", ICLR
2018 (Algorithm 1, the fixed-denominator estimator ``f~_f``): each client's delta is clipped to L2 norm
``C`` (scaled down, never rejected), the clipped deltas are summed with equal weight and divided by
a fixed, public denominator ``D`` (the expected number of clients per round, not the number that
came), and Gaussian noise is added:

    new global = global + server_lr * ( sum_i clip_C(delta_i) / D + N(0, (z C / D)^2 I) )

One client moves the mean by at most ``C / D`` whatever the others sent, so the noise is ``z`` times
that sensitivity. Clients' sample counts are ignored (uniform weights, as in Andrew et al. and
TensorFlow Federated; McMahan et al. also allow capped weights).

Adaptive clipping (``adaptive_clip=True``): Andrew, Thakkar, McMahan, Ramaswamy, NeurIPS 2021, see
``fmfl.privacy.adaptive_clip``; the update noise then uses ``z_delta`` and the clip norm moves toward
the ``target_quantile`` of the update norms each round.

Reproducibility: the noise of round ``r`` comes from ``SeedSequence(noise_seed, spawn_key=(r,))``,
never from global RNG state, and ``noise_seed`` and ``C`` live in ``state_dict``; so a crash, WAL
replay and resume produce the same global model bit for bit. The seed must stay secret (whoever knows
it can subtract the noise): unless given, it is drawn from the OS at first start and kept only in the
server state in ``--state-dir``.

Privacy accounting: ``fmfl.privacy.accountant`` after every round (``round_metrics``: ``dp_epsilon``).
Clients' codecs (top-k, int8) run before the server clips, which is fine for central DP: the server
clips whatever arrived. Partial rounds (workers, tiers) are not supported: refused at start-up.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from fmfl.aggregation.accumulator import WeightedSum
from fmfl.aggregation.sparse import Float32Array, Float64Array
from fmfl.aggregation.state_file import CorruptState
from fmfl.aggregation.strategy import RoundStateError, StateDict, Strategy, check_positive
from fmfl.aggregation.validation import UpdateLimits, ValidUpdate
from fmfl.privacy.accountant import Sampling, epsilon
from fmfl.privacy.adaptive_clip import AdaptiveClip, update_noise_multiplier

log = logging.getLogger(__name__)

_SEED_WORDS = 4  # a 128-bit noise seed, stored as uint32 words in the server state


def seed_words(seed: int) -> npt.NDArray[np.uint32]:
    """A 128-bit noise seed as four little-endian uint32 words (the form kept in the server state)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** (32 * _SEED_WORDS):
        raise ValueError(f"seed must be an integer in [0, 2**128), got {seed!r}")
    return np.array([(seed >> (32 * i)) & 0xFFFFFFFF for i in range(_SEED_WORDS)], dtype=np.uint32)


def round_rng(words: npt.NDArray[np.uint32], round_index: int) -> np.random.Generator:
    """The generator of round ``round_index``'s noise: independent streams per round (spawn keys)."""
    entropy = [int(w) for w in words]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(round_index,))))


class DpFedAvg(Strategy):
    """Clip, average over a fixed denominator, add Gaussian noise; account epsilon per round."""

    name: ClassVar[str] = "dp-fedavg"
    supports_partial_rounds: ClassVar[bool] = False

    def __init__(
        self,
        *,
        noise_multiplier: float,
        clip_norm: float,
        expected_clients: int,
        sampling_rate: float = 1.0,
        delta: float = 1e-5,
        accounting_sampling: str = "poisson",
        fleet_size: int | None = None,
        adaptive_clip: bool = False,
        target_quantile: float = 0.5,
        clip_learning_rate: float = 0.2,
        clipped_count_stddev: float | None = None,
        seed: int | None = None,
        server_lr: float = 1.0,
        limits: UpdateLimits | None = None,
    ) -> None:
        super().__init__(server_lr=server_lr, limits=limits)
        self.noise_multiplier = check_positive("noise_multiplier", noise_multiplier)
        self.clip_norm = check_positive("clip_norm", clip_norm)
        if isinstance(expected_clients, bool) or not isinstance(expected_clients, int) or expected_clients < 1:
            raise ValueError(f"expected_clients must be a positive integer, got {expected_clients!r}")
        self.expected_clients = expected_clients
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int | float) or not 0 < sampling_rate <= 1:
            raise ValueError(f"sampling_rate must be in (0, 1], got {sampling_rate!r}")
        self.sampling_rate = float(sampling_rate)
        if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        self.delta = float(delta)
        try:
            self.accounting_sampling = Sampling(accounting_sampling)
        except ValueError:
            choices = ", ".join(s.value for s in Sampling)
            raise ValueError(f"accounting_sampling must be one of {choices}, got {accounting_sampling!r}") from None
        self.fleet_size = fleet_size
        self.adaptive: AdaptiveClip | None = None
        self.update_multiplier = self.noise_multiplier
        if adaptive_clip:
            stddev = clipped_count_stddev if clipped_count_stddev is not None else expected_clients / 20.0
            self.adaptive = AdaptiveClip(target_quantile, clip_learning_rate, stddev)
            self.update_multiplier = update_noise_multiplier(self.noise_multiplier, stddev)
        elif clipped_count_stddev is not None:
            raise ValueError("clipped_count_stddev is an adaptive-clipping option: set adaptive_clip too")
        # Eagerly: a fixed-size run without a fleet size, or q*N not whole, fails here, not after round 1.
        epsilon(self.noise_multiplier, self.sampling_rate, 1, self.delta,
                sampling=self.accounting_sampling, fleet_size=fleet_size)
        self._seed = seed_words(secrets.randbits(128) if seed is None else seed)
        self._sum: WeightedSum | None = None
        self._unclipped = 0
        self._epsilon: tuple[int, float] | None = None  # (rounds, epsilon) cache
        self.last_round: dict[str, float] = {}

    # --- a round -----------------------------------------------------------------------------------

    def _open_round(self, size: int) -> None:
        if self._sum is not None and self._sum.size == size:
            self._sum.reset()
        else:
            self._sum = WeightedSum(size)
        self._unclipped = 0
        self.last_round = {}  # a round that fails its quorum reports only the cumulative numbers

    def _add(self, update: ValidUpdate) -> None:
        assert self._sum is not None  # _add runs only in an open round
        norm = float(np.linalg.norm(update.values.astype(np.float64)))
        if norm <= self.clip_norm:
            self._unclipped += 1
            factor = 1.0
        else:
            factor = self.clip_norm / norm
        # The weight is the clip factor: the sum holds sum_i clip_C(delta_i), unweighted by samples.
        self._sum.add(update.indices, update.values, factor)

    def _aggregate_delta(self) -> Float64Array:
        assert self._sum is not None
        participants = self._sum.count
        rng = round_rng(self._seed, self.rounds)
        stddev = self.update_multiplier * self.clip_norm / self.expected_clients
        mean: Float64Array = np.divide(self._sum.sum, float(self.expected_clients))
        mean += rng.normal(0.0, stddev, size=mean.shape)
        used = self.clip_norm
        self.last_round = {
            "dp_clip_norm": used,
            "dp_noise_stddev": stddev,
            "dp_unclipped_fraction": self._unclipped / participants,
        }
        if self.adaptive is not None:
            # Drawn after the update noise from the same stream: replay draws in the same order.
            estimate = self.adaptive.noised_fraction(self._unclipped, participants, self.expected_clients, rng)
            self.clip_norm = self.adaptive.step(self.clip_norm, estimate)
            self.last_round.update({"dp_unclipped_estimate": estimate, "dp_next_clip_norm": self.clip_norm})
        return mean

    def aggregate(self) -> Float32Array:
        new = super().aggregate()
        metrics = self.round_metrics()
        log.info(
            "dp-fedavg round %d: clip %.4g, noise std %.3g, %.0f%% unclipped; epsilon %.4g at delta %g",
            self.rounds,
            self.last_round["dp_clip_norm"],
            self.last_round["dp_noise_stddev"],
            100 * self.last_round["dp_unclipped_fraction"],
            metrics["dp_epsilon"],
            self.delta,
        )
        return new

    def epsilon(self) -> float:
        """Epsilon at ``delta`` spent by the rounds aggregated so far (cached per round count)."""
        if self._epsilon is None or self._epsilon[0] != self.rounds:
            eps = epsilon(self.noise_multiplier, self.sampling_rate, self.rounds, self.delta,
                          sampling=self.accounting_sampling, fleet_size=self.fleet_size)
            self._epsilon = (self.rounds, eps)
        return self._epsilon[1]

    def round_metrics(self) -> dict[str, float]:
        out = {
            "dp_epsilon": self.epsilon(),
            "dp_delta": self.delta,
            "dp_noise_multiplier": self.noise_multiplier,
            "dp_sampling_rate": self.sampling_rate,
        }
        out.update(self.last_round)
        return out

    def _partial_bytes(self) -> bytes:
        raise RoundStateError(f"{self.name} does not support partial rounds (workers, tiers)")

    def _merge_partial(self, payload: bytes, clients: frozenset[str]) -> None:
        raise RoundStateError(f"{self.name} does not support partial rounds (workers, tiers)")

    # --- server state ------------------------------------------------------------------------------

    def _server_state(self) -> StateDict:
        return {"clip_norm": np.array(self.clip_norm, dtype=np.float64), "noise_seed": self._seed.copy()}

    def _load_server_state(self, state: Mapping[str, npt.NDArray[np.generic]]) -> None:
        clip, seed = np.asarray(state["clip_norm"]), np.asarray(state["noise_seed"])
        if clip.shape != () or clip.dtype != np.float64 or not (math.isfinite(float(clip)) and float(clip) > 0):
            raise CorruptState("server state 'clip_norm' must be a positive finite float64 scalar")
        if seed.shape != (_SEED_WORDS,) or seed.dtype != np.uint32:
            raise CorruptState(f"server state 'noise_seed' must be {_SEED_WORDS} uint32 words")
        if self.adaptive is None and float(clip) != self.clip_norm:
            # A fixed clip norm is part of the run's privacy parameters: the saved one wins, and says so.
            log.warning("dp-fedavg: resuming with the saved clip norm %.6g, not the configured %.6g",
                        float(clip), self.clip_norm)
        self.clip_norm = float(clip)
        self._seed = seed.copy()
        self.last_round = {}

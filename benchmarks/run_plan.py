"""What ``benchmarks.run`` measures: the task's settings, the goals the issues set, the full and quick plans."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

SEED, ALPHA, LR, BATCH, IMAGE = 0, 0.5, 1e-3, 32, 64
# Goals from the issues: #3 update >= 100x smaller than dense fp32; #4 step <= 0.6x torch, RSS <= 0.4x,
# cold start < 1 s; #5 aggregation >= 10x faster than Flower's at 1% density; #6 <= 1% of dense bytes up.
# #6 also: the default codec's accuracy within 1 point of dense updates.
GOAL_STEP, GOAL_RSS, GOAL_COLD_S, GOAL_AGG, GOAL_UP, GOAL_ACC = 0.6, 0.4, 1.0, 10.0, 0.01, 0.01


@dataclass(frozen=True)
class Plan:
    clients: int
    rounds: int  # fmfl (default codec and dense) and Flower + cached features
    deployed_rounds: int  # Flower as deployed (trunk every step, a fresh ClientApp process every round)
    deployed_cached: bool  # also deploy Flower + cached features for deployed_rounds (process cost without trunk)
    max_samples: int
    repeats: int  # cold-start pairs
    agg_repeats: int
    test_samples: int | None  # None: the whole 10,000-image test set
    scaling: bool
    dense_run: bool  # also run fmfl with --codec dense (separates the codec's effect from the trainer's)

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """Rounds at which every run's global model is scored (the same rounds on every side)."""
        return tuple(sorted({self.deployed_rounds, *(r for r in (25, 50, 100) if r < self.rounds), self.rounds}))


# 200 rounds: the demo's default for vision, where the default codec has converged (docs/results.md); chosen
# from the training curve of that document, never from this benchmark's test accuracy.
FULL = Plan(clients=10, rounds=200, deployed_rounds=4, deployed_cached=True, max_samples=12_000, repeats=3,
            agg_repeats=50, test_samples=None, scaling=True, dense_run=True)
# --quick checks that every part of the harness still runs: one deployed Flower round (each costs a fresh
# ClientApp process per client), 1,500 samples, no scaling curves; the cached-features ClientApp runs
# simulated only (the deployed run with cached features is the same `federate` path with one flag).
QUICK = Plan(clients=3, rounds=2, deployed_rounds=1, deployed_cached=False, max_samples=1_500, repeats=1,
             agg_repeats=5, test_samples=1_000, scaling=False, dense_run=False)


def stats(xs: list[float]) -> tuple[float, float, float]:
    """(min, median, max): the machine is shared, so every figure is read at its median."""
    return min(xs), statistics.median(xs), max(xs)


def fmt(xs: list[float], scale: float = 1.0, digits: int = 2) -> str:
    lo, med, hi = stats(xs)
    return f"{lo * scale:,.{digits}f} / {med * scale:,.{digits}f} / {hi * scale:,.{digits}f}"


def goal(ok: bool) -> str:
    return "met" if ok else "**missed**"

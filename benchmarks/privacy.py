"""Accuracy against epsilon: final test accuracy of central and local DP on the vision demo task.

    .venv/bin/python -m benchmarks.privacy [--quick] [--output PATH] [--cache-dir DIR]

Runs the in-process simulation (``fmfl.simulation``: real bundle, ORT training, codec, rules and central
evaluation; no MQTT) of the vision demo task - Fashion-MNIST, 10 clients, Dirichlet(0.5), seed 0 - and rewrites
the section "## Accuracy against epsilon" of docs/privacy.md plus the plot docs/privacy_epsilon.png (beside
``--output``).

Fixed before any run (nothing is tuned on test accuracy):
- regimes: the demo's fleet (10 clients, all of them every round, ``q = 1``, ``ROUNDS`` rounds) and a larger
  simulated fleet (each of the 10 demo shards split at random into ``FLEET_PARTS`` equal parts: 100 clients of
  the same data; every client joins each round independently with ``q = 0.1`` - Poisson sampling, exactly what
  the accountant assumes; ``FLEET_ROUNDS`` rounds);
- mechanisms: no DP (FedAvg), central DP-FedAvg (``dp-fedavg``: clip, fixed denominator ``D = q N = 10``,
  Gaussian noise ``z C / D``), local DP (every device clips and noises its own delta, ``sigma = z C``; FedAvg
  on the server), for every ``z`` in ``NOISE_MULTIPLIERS``; the larger fleet runs central DP only;
- clip norm ``C``: the median L2 norm of the clients' round-1 updates in the same regime's no-DP run (the
  clip then binds for about half of the updates at the start of training);
- codec: dense fp32 for every run (top-k before central clipping changes what gets clipped, and top-k of a
  locally noised dense delta selects mostly noise; docs/privacy.md says to use a dense codec with local DP);
- epsilon at ``DELTA``: central - what ``dp-fedavg`` itself reports (``round_metrics()["dp_epsilon"]``, RDP,
  client-level, add-or-remove-one neighbours, Poisson sampling at ``q``); local - ``LocalDp.epsilon`` per device
  after the releases it made (replace-one, no amplification: the server sees who sends).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._docs import cpu_model, replace_section
from fmfl.aggregation.catalog import make_strategy
from fmfl.aggregation.rules.dp_fedavg import DpFedAvg
from fmfl.aggregation.strategy import Strategy
from fmfl.privacy.accountant import epsilon as accountant_epsilon
from fmfl.privacy.local import LocalDp, privatize
from fmfl.simulation import (
    ClientShard,
    Population,
    SimulationConfig,
    SimulationResult,
    UpdateContext,
    build_population,
    run_simulation,
)

DOC = Path(__file__).parents[1] / "docs" / "privacy.md"
HEADING = "## Accuracy against epsilon"
PLOT_NAME = "privacy_epsilon.png"
SEED = 0
CLIENTS = 10
ALPHA = 0.5
DELTA = 1e-5
NOISE_MULTIPLIERS = (0.3, 0.5, 1.0, 2.0, 4.0)
ROUNDS = 100
FLEET_PARTS = 10
FLEET_Q = 0.1
FLEET_ROUNDS = 200
#: a run "learned nothing" when it ends within this many points of the initial model's accuracy
NOTHING_POINTS = 2.0


@dataclass(frozen=True)
class Regime:
    label: str
    population: Population
    q: float
    rounds: int

    @property
    def fleet(self) -> int:
        return len(self.population.clients)

    @property
    def expected_clients(self) -> int:
        return round(self.q * self.fleet)


@dataclass(frozen=True)
class Row:
    regime: Regime
    mechanism: str  # "none", "central", "local"
    z: float | None
    clip: float | None
    epsilon: float
    result: SimulationResult
    #: central: epsilon of the same run under the stricter fixed-size (replace-one) accountant, for q < 1
    epsilon_fixed_size: float | None = None

    @property
    def accuracy(self) -> float:
        return self.result.final_accuracy

    @property
    def tail_range(self) -> tuple[float, float]:
        """Min and max test accuracy over the evaluated rounds of the last third: the noise to read the final
        number against (one seed per row)."""
        rounds = self.regime.rounds
        tail = [v for k, v in self.result.accuracy.items() if k >= rounds - rounds // 3]
        return min(tail), max(tail)

    @property
    def learned_nothing(self) -> bool:
        return 100 * (self.result.final_accuracy - self.result.accuracy[0]) < NOTHING_POINTS


def split_fleet(population: Population, parts: int, seed: int) -> Population:
    """Each client's shard split at random into ``parts`` near-equal disjoint shards: ``parts`` x more clients
    of the same data (the same label skew per parent shard), ids ``<parent>-<j>``."""
    rng = np.random.default_rng(seed)
    shards = []
    for parent in population.clients:
        order = rng.permutation(len(parent.train))
        for j, index in enumerate(np.array_split(order, parts)):
            shards.append(ClientShard(f"{parent.client_id}-{j}", parent.train.subset(np.sort(index))))
    return dataclasses.replace(population, clients=tuple(shards))


def _median_round1_norm(result: SimulationResult) -> float:
    return float(statistics.median(result.rounds[0].norms.values()))


def run_regime(regime: Regime, *, local: bool, eval_every: int, progress: Callable[[str], None]) -> list[Row]:
    """The regime's no-DP run, then central (and optionally local) DP for every ``z``."""
    base_cfg = SimulationConfig(rounds=regime.rounds, participation=regime.q, seed=SEED, eval_every=eval_every)

    def report(row: Row) -> Row:
        r = row.result
        progress(f"{regime.label:28s} {row.mechanism:8s} z={row.z if row.z is not None else '-':<4} "
                 f"C={row.clip if row.clip is not None else float('nan'):.3f} eps={row.epsilon:10.4g} "
                 f"acc={100 * r.final_accuracy:6.2f}%  ({r.seconds:.1f} s, {r.seconds_per_round:.2f} s/round)")
        return row

    baseline = run_simulation(regime.population, base_cfg)
    clip = _median_round1_norm(baseline)
    rows = [report(Row(regime, "none", None, None, math.inf, baseline))]
    for z in NOISE_MULTIPLIERS:
        made: list[Strategy] = []

        def factory(z: float = z, made: list[Strategy] = made) -> Strategy:
            strategy = make_strategy("dp-fedavg", noise_multiplier=z, clip_norm=clip,
                                     expected_clients=regime.expected_clients, sampling_rate=regime.q,
                                     delta=DELTA, seed=SEED)
            made.append(strategy)
            return strategy

        result = run_simulation(regime.population, dataclasses.replace(base_cfg, strategy=factory))
        strategy = made[0]
        assert isinstance(strategy, DpFedAvg)
        if strategy.rounds != regime.rounds:  # a Poisson round that nobody joined: nothing was released
            progress(f"note: {regime.rounds - strategy.rounds} round(s) without participants")
        fixed = None
        if regime.q < 1.0:
            fixed = accountant_epsilon(z, regime.q, strategy.rounds, DELTA, sampling="fixed-size",
                                       fleet_size=regime.fleet)
        rows.append(report(Row(regime, "central", z, clip, strategy.round_metrics()["dp_epsilon"], result, fixed)))
    if local:
        for z in NOISE_MULTIPLIERS:
            dp = LocalDp(clip=clip, noise_multiplier=z, delta=DELTA)

            def transform(delta: np.ndarray, ctx: UpdateContext, dp: LocalDp = dp) -> np.ndarray:
                return privatize(delta, dp.clip, dp.sigma, ctx.rng())

            result = run_simulation(regime.population, dataclasses.replace(base_cfg, transform=transform))
            releases = max(sum(cid in log.norms for log in result.rounds) for cid in regime.population.client_ids)
            rows.append(report(Row(regime, "local", z, clip, dp.epsilon(releases), result)))
    return rows


def _eps(x: float) -> str:
    if math.isinf(x):
        return "∞ (no DP)"
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


MECHANISM_LABEL = {"none": "none (FedAvg)", "central": "central DP-FedAvg", "local": "local DP (+ FedAvg)"}


def render(rows: list[Row], regimes: list[Regime], wall: float, quick: bool) -> str:
    today = datetime.date.today().isoformat()
    demo, *rest = regimes
    pop = demo.population
    sizes = [c.num_samples for c in pop.clients]
    per_round = {reg.label: statistics.median(r.result.seconds_per_round for r in rows if r.regime is reg)
                 for reg in regimes}
    lines = [
        HEADING,
        "",
        f"Written by `python -m benchmarks.privacy{' --quick' if quick else ''}` on {today}.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), shared with other work; "
        f"load average at the end {os.getloadavg()[0]:.1f}.",
        f"Total wall time: **{wall:.0f} s** ({len(rows)} runs; setup {pop.setup_seconds:.0f} s for data, bundle "
        "and prefix features; median seconds per round: "
        + ", ".join(f"{k} {v:.2f}" for k, v in per_round.items()) + ").",
        "",
        "Setup: `fmfl.simulation` (in-process: the real exported bundle, ORT on-device training, the update codec, "
        "the rules and the demo's central evaluator; only MQTT is left out) on the vision demo task: Fashion-MNIST "
        f"({sum(sizes):,} training samples on the clients after each device's 20% hold-out; "
        f"{len(pop.evaluator.test_y):,} test images), EfficientNet-Lite0 frozen trunk + linear head "
        f"({pop.initial.size:,} trainable floats), Dirichlet({pop.alpha:g}) label skew, 1 local epoch, batch 32, "
        f"AdamW lr 1e-3, seed {SEED}, delta = {DELTA:g}. Fixed before any run; nothing was tuned on test accuracy:",
        "",
        f"- **Regimes.** *{demo.label}*: the demo's {demo.fleet} clients, every client every round (q = 1), "
        f"{demo.rounds} rounds.",
    ]
    for reg in rest:
        lines.append(
            f"  *{reg.label}*: each of the {demo.fleet} demo shards split at random into {FLEET_PARTS} equal parts "
            f"({reg.fleet} clients of the same data, about {sum(sizes) // reg.fleet} samples each); every client "
            f"joins each round independently with probability q = {reg.q:g} (Poisson sampling, simulated by "
            f"`SimulationConfig.participation`), {reg.rounds} rounds.")
    lines += [
        "- **Mechanisms.** Central: `dp-fedavg` (clip each delta to C, sum, divide by the fixed D = q N = "
        f"{demo.expected_clients}, add N(0, (z C / D)^2)). Local: every device runs `privatize` (clip to C, add "
        "N(0, (z C)^2)) on its delta before the codec, the server runs plain FedAvg. "
        f"z in {{{', '.join(f'{z:g}' for z in NOISE_MULTIPLIERS)}}}; the larger fleet runs central DP only.",
        "- **Clip norm C**: the median L2 norm of the round-1 updates in the same regime's no-DP run (so about half "
        "the updates are clipped at the start); one value per regime, the same for every z and both mechanisms.",
        "- **Codec: dense fp32** everywhere: top-k 1% (the demo's default) before central clipping changes what "
        "is clipped, and top-k of a locally noised dense delta selects mostly noise.",
        "- **Epsilon.** Central: what `dp-fedavg` reports after the last round (`round_metrics()['dp_epsilon']`, "
        "RDP accountant, client-level, add-or-remove-one neighbours, Poisson sampling at q; with q = 1 that is "
        "plain composition of R Gaussian mechanisms, no amplification). Local: `LocalDp.epsilon` of one device "
        "after all its releases (its whole data set is the unit, replace-one neighbours, sensitivity 2C; the "
        "server is not trusted, so this guarantee is stronger in kind and not comparable one to one). "
        f"\"learned nothing\" = within {NOTHING_POINTS:g} points of the initial model's accuracy. One seed per "
        "row; the min-max of the test accuracy over the evaluated rounds (every tenth of the run) of the last third "
        "shows how far a final number moves from round to round.",
        "",
        "| regime | mechanism | z | clip C | epsilon | final accuracy (%) | last third, min-max (%) | rounds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        acc = f"{100 * row.accuracy:.2f}" + (" (learned nothing)" if row.learned_nothing else "")
        lines.append(
            f"| {row.regime.label} | {MECHANISM_LABEL[row.mechanism]} | "
            f"{'-' if row.z is None else f'{row.z:g}'} | {'-' if row.clip is None else f'{row.clip:.3f}'} | "
            f"{_eps(row.epsilon)} | {acc} | {100 * row.tail_range[0]:.2f}-{100 * row.tail_range[1]:.2f} | "
            f"{row.regime.rounds} |")
    lines += ["", "Findings of this run (computed from the rows above):", "", *_findings(rows, regimes), "",
              f"![test accuracy against epsilon]({PLOT_NAME})"]
    return "\n".join(lines) + "\n"


def _findings(rows: list[Row], regimes: list[Regime]) -> list[str]:
    out = []
    for reg in regimes:
        mine = [r for r in rows if r.regime is reg]
        base = next(r for r in mine if r.mechanism == "none")
        out.append(f"- *{reg.label}*: no DP {100 * base.accuracy:.2f}% (initial model "
                   f"{100 * base.result.accuracy[0]:.2f}%).")
        for mech in ("central", "local"):
            runs = [r for r in mine if r.mechanism == mech]
            if not runs:
                continue
            within = [r for r in runs if 100 * (base.accuracy - r.accuracy) <= 3.0]
            best = min(within, key=lambda r: r.epsilon) if within else None
            nothing = [f"z {r.z:g}" for r in runs if r.learned_nothing]
            text = (f"  - {MECHANISM_LABEL[mech]}: " +
                    (f"the smallest epsilon within 3 points of no DP is {_eps(best.epsilon)} (z {best.z:g}, "
                     f"{100 * best.accuracy:.2f}%)" if best else "no z stays within 3 points of no DP"))
            text += f"; learned nothing at {', '.join(nothing)}." if nothing else "."
            fixed = [r for r in runs if r.epsilon_fixed_size is not None]
            if fixed:
                text += (" The same runs under the stricter fixed-size accountant (a fixed-size sample of qN, "
                         "replace-one neighbours, as fmfl's gateway selects): epsilon "
                         + ", ".join(f"{_eps(r.epsilon_fixed_size or 0.0)} (z {r.z:g})" for r in fixed) + ".")
            out.append(text)
    out += _noise_findings(rows, regimes)
    return out


def _noise_findings(rows: list[Row], regimes: list[Regime]) -> list[str]:
    """Why the curves sit where they do: per-round noise against the clipped signal, and central vs local
    at about the same epsilon."""
    demo = regimes[0]
    d = demo.population.initial.size
    sizes = np.array([c.num_samples for c in demo.population.clients], dtype=np.float64)
    weights = sizes / sizes.sum()
    central = math.sqrt(d) / demo.expected_clients
    local = math.sqrt(d) * float(np.sqrt((weights**2).sum()))
    out = [
        f"- Noise per round against the signal: the aggregate's noise has L2 norm about z C sqrt(d) / D = "
        f"{central:.1f} z C for central DP (d = {d:,}, D = {demo.expected_clients}), while the clipped mean "
        f"moves by at most C; local DP's sample-weighted mean of {demo.fleet} independently noised deltas has "
        f"about z C sqrt(d) sqrt(sum w_i^2) = {local:.1f} z C ({local / central:.1f}x central's for the same z, "
        "and its epsilon is larger too: sensitivity 2C, no averaging before release).",
    ]
    for reg in regimes:
        mine = [r for r in rows if r.regime is reg]
        centrals = [r for r in mine if r.mechanism == "central"]
        pairs = []
        for loc in (r for r in mine if r.mechanism == "local"):
            near = min(centrals, key=lambda r: abs(math.log(r.epsilon / loc.epsilon)))
            pairs.append(f"local z {loc.z:g} (epsilon {_eps(loc.epsilon)}) {100 * loc.accuracy:.2f}% vs central "
                         f"z {near.z:g} ({_eps(near.epsilon)}) {100 * near.accuracy:.2f}%")
        if pairs:
            out.append(f"- Local against central DP at the nearest epsilon ({reg.label}): " + "; ".join(pairs) + ".")
    return out


def plot(rows: list[Row], regimes: list[Regime], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    i = 0
    for reg in regimes:
        mine = [r for r in rows if r.regime is reg]
        base = next(r for r in mine if r.mechanism == "none")
        for mech, marker in (("central", "o"), ("local", "s")):
            runs = sorted((r for r in mine if r.mechanism == mech), key=lambda r: r.epsilon)
            if not runs:
                continue
            color = colors[i % len(colors)]
            i += 1
            ax.plot([r.epsilon for r in runs], [100 * r.accuracy for r in runs], marker=marker, color=color,
                    label=f"{MECHANISM_LABEL[mech]}, {reg.label}")
            for r in runs:
                ax.annotate(f"z={r.z:g}", (r.epsilon, 100 * r.accuracy), textcoords="offset points",
                            xytext=(3, 4), fontsize=7, color=color)
        ax.axhline(100 * base.accuracy, linestyle="--", color="grey" if reg is regimes[0] else "black",
                   linewidth=1, label=f"no DP, {reg.label} ({100 * base.accuracy:.1f}%)")
    ax.set_xscale("log")
    ax.set_xlabel("epsilon at delta = 1e-5 (log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1,500 training samples, 2 rounds (3 in the larger fleet): checks the pipeline only")
    parser.add_argument("--no-fleet", action="store_true", help="skip the larger simulated fleet")
    parser.add_argument("--output", type=Path, default=DOC, help="markdown file whose section is rewritten")
    parser.add_argument("--cache-dir", type=Path, default=Path(".fmfl-cache"),
                        help="bundle and prefix-feature cache (shared with fmfl demo)")
    args = parser.parse_args()
    rounds, fleet_rounds = (2, 3) if args.quick else (ROUNDS, FLEET_ROUNDS)
    start = time.perf_counter()
    population = build_population(task="vision", clients=CLIENTS, alpha=ALPHA, seed=SEED,
                                  max_samples=1500 if args.quick else None, cache_dir=args.cache_dir,
                                  image_size=64, optimizer="adamw")  # the setting its results were measured in
    print(f"population ready in {population.setup_seconds:.0f} s: {len(population.clients)} clients, "
          f"{[c.num_samples for c in population.clients]} training samples", flush=True)

    def progress(line: str) -> None:
        print(line, flush=True)

    regimes = [Regime(f"{CLIENTS} clients, q = 1", population, 1.0, rounds)]
    rows = run_regime(regimes[0], local=True, eval_every=max(1, rounds // 10), progress=progress)
    if not args.no_fleet:
        fleet = split_fleet(population, FLEET_PARTS, SEED)
        regimes.append(Regime(f"{len(fleet.clients)} clients, q = {FLEET_Q:g}", fleet, FLEET_Q, fleet_rounds))
        rows += run_regime(regimes[1], local=False, eval_every=max(1, fleet_rounds // 10), progress=progress)
    wall = time.perf_counter() - start
    section = render(rows, regimes, wall, args.quick)
    replace_section(args.output, HEADING, section, title="# Differential privacy")
    plot(rows, regimes, args.output.parent / PLOT_NAME)
    print(section)


if __name__ == "__main__":
    main()

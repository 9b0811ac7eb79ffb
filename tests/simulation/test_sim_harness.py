"""The in-process harness on real Fashion-MNIST samples, the real exported bundle, ORT training and rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the population exports the demo bundle on first use (workstation extra)")

from fmfl.aggregation.catalog import make_strategy
from fmfl.aggregation.strategy import Strategy
from fmfl.aggregation.validation import UpdateLimits
from fmfl.simulation import (
    Population,
    SimulationConfig,
    UpdateContext,
    build_population,
    make_attack,
    run_simulation,
)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    """A few hundred real training samples over 5 clients (the prefix runs once, into a temp cache)."""
    cache = tmp_path_factory.mktemp("cache")
    # Pinned to the setting these tests were written for (AdamW at 64 px; the vision demo's own is SGD at 96 px).
    return build_population(clients=5, max_samples=500, seed=0, cache_dir=cache, image_size=64, optimizer="adamw")


def test_population_matches_the_demo_split(population: Population) -> None:
    assert population.client_ids == ("c00", "c01", "c02", "c03", "c04")
    total = sum(c.num_samples for c in population.clients)
    assert 380 <= total <= 420  # 500 samples minus each device's 20% hold-out
    feature = population.clients[0].train.inputs["encoder.embedding"]
    assert feature.shape[1:] == (1280,)
    assert feature.dtype == np.float32
    assert population.initial.shape == (12_810,)


def test_rounds_improve_accuracy_and_the_same_seed_gives_the_same_weights(population: Population) -> None:
    # Prepare
    config = SimulationConfig(rounds=3, eval_every=1, seed=3)

    # Execute
    first = run_simulation(population, config)
    second = run_simulation(population, config)

    # Assert
    assert first.final_accuracy > first.accuracy[0] + 0.2, first.accuracy
    assert sorted(first.accuracy) == [0, 1, 2, 3]
    np.testing.assert_array_equal(first.final_weights, second.final_weights)
    assert first.accuracy == second.accuracy
    assert all(len(r.accepted) == 5 and not r.rejected for r in first.rounds)
    other = run_simulation(population, SimulationConfig(rounds=3, seed=4))
    assert not np.array_equal(other.final_weights, first.final_weights)  # the seed matters


def test_norm_bound_rejects_scaled_updates_and_keeps_benign_ones(population: Population) -> None:
    honest = run_simulation(population, SimulationConfig(rounds=1))
    bound = 3.0 * float(np.median(list(honest.rounds[0].norms.values())))
    config = SimulationConfig(strategy="fedavg", strategy_options={"limits": UpdateLimits(max_norm=bound)},
                              rounds=2, malicious_fraction=0.4, attack=make_attack("scaling", factor=10.0))
    result = run_simulation(population, config)
    assert len(result.malicious) == 2
    for log in result.rounds:
        assert set(log.rejected) == set(result.malicious)
        assert set(log.rejected.values()) == {"norm"}
        assert set(log.accepted) == set(population.client_ids) - set(result.malicious)
    assert result.rejected_count(malicious=True) == 4
    assert result.rejected_count(malicious=False) == 0


def test_a_round_with_every_update_rejected_keeps_the_global_model(population: Population) -> None:
    config = SimulationConfig(strategy_options={"limits": UpdateLimits(max_norm=1e-9)}, rounds=2)
    result = run_simulation(population, config)
    np.testing.assert_array_equal(result.final_weights, population.initial)
    assert result.final_accuracy == result.accuracy[0]
    assert all(set(r.rejected.values()) == {"norm"} and not r.accepted for r in result.rounds)


def test_label_flip_poisons_a_copy_and_sign_flip_reverses_progress(population: Population) -> None:
    labels_before = [c.train.labels.copy() for c in population.clients]  # type: ignore[union-attr]
    flipped = run_simulation(population, SimulationConfig(rounds=2, malicious_fraction=0.4,
                                                          attack=make_attack("label-flip")))
    for shard, before in zip(population.clients, labels_before, strict=True):
        np.testing.assert_array_equal(shard.train.labels, before)  # type: ignore[arg-type]
    honest = run_simulation(population, SimulationConfig(rounds=2))
    assert not np.array_equal(flipped.final_weights, honest.final_weights)
    # Sign flip by a majority (3 of 5) under FedAvg pushes the model away from the honest optimum.
    flipped_signs = run_simulation(population, SimulationConfig(rounds=2, malicious_fraction=0.6,
                                                                attack=make_attack("sign-flip")))
    assert flipped_signs.final_accuracy < honest.final_accuracy


def test_transform_hook_sees_every_client_each_round(population: Population) -> None:
    seen: list[UpdateContext] = []

    def zero(delta: np.ndarray, ctx: UpdateContext) -> np.ndarray:
        seen.append(ctx)
        return np.zeros_like(delta)

    result = run_simulation(population, SimulationConfig(rounds=2, transform=zero, malicious_fraction=0.2))
    assert [(c.round, c.client_id) for c in seen] == [(r, c) for r in (1, 2) for c in population.client_ids]
    assert sum(c.malicious for c in seen) == 2  # one malicious client, two rounds
    assert all(c.num_samples > 0 for c in seen)
    assert seen[0].rng().normal() == UpdateContext(**{**seen[0].__dict__}).rng().normal()
    np.testing.assert_array_equal(result.final_weights, population.initial)  # zero deltas change nothing


def test_strategy_factories_and_robust_rules_run(population: Population) -> None:
    def factory() -> Strategy:
        return make_strategy("median")

    by_factory = run_simulation(population, SimulationConfig(strategy=factory, rounds=1))
    by_name = run_simulation(population, SimulationConfig(strategy="median", rounds=1))
    np.testing.assert_array_equal(by_factory.final_weights, by_name.final_weights)
    krum = run_simulation(population, SimulationConfig(strategy="krum", strategy_options={"num_byzantine": 1},
                                                       rounds=1, malicious_fraction=0.2,
                                                       attack=make_attack("alie")))
    assert np.isfinite(krum.final_weights).all()


def test_bad_configurations_are_clear_errors(population: Population, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rounds, local_epochs and batch_size must be >= 1"):
        SimulationConfig(rounds=0)
    with pytest.raises(ValueError, match=r"malicious_fraction must be in \[0, 1\)"):
        SimulationConfig(malicious_fraction=1.0)
    with pytest.raises(ValueError, match="strategy 'krum' needs option num_byzantine"):
        run_simulation(population, SimulationConfig(strategy="krum", rounds=1))
    with pytest.raises(ValueError, match="a factory takes none"):
        run_simulation(population, SimulationConfig(strategy=lambda: make_strategy("fedavg"),
                                                    strategy_options={"beta": 0.1}, rounds=1))
    with pytest.raises(ValueError, match="unknown task 'audio'"):
        build_population(task="audio", cache_dir=tmp_path)


def test_poisson_participation_trains_only_the_sampled_clients(population: Population) -> None:
    from fmfl.simulation.harness import sample_clients

    # Prepare
    ids = population.client_ids
    seen: list[tuple[int, str]] = []

    def record(delta: np.ndarray, ctx: UpdateContext) -> np.ndarray:
        seen.append((ctx.round, ctx.client_id))
        return delta

    # Execute
    result = run_simulation(population, SimulationConfig(rounds=4, participation=0.5, seed=2, transform=record))
    again = run_simulation(population, SimulationConfig(rounds=4, participation=0.5, seed=2))

    # Assert: each round trains, sends and aggregates exactly the clients sampled for it, reproducibly
    expected = [sample_clients(ids, 0.5, 2, r) for r in range(1, 5)]
    assert [log.accepted for log in result.rounds] == expected
    assert seen == [(r, c) for r, joined in enumerate(expected, start=1) for c in joined]
    assert any(0 < len(joined) < len(ids) for joined in expected), expected
    np.testing.assert_array_equal(result.final_weights, again.final_weights)
    assert sample_clients(ids, 1.0, 2, 1) == ids
    rate = np.mean([len(sample_clients(ids, 0.1, 0, r)) for r in range(1, 2001)]) / len(ids)
    assert 0.08 < rate < 0.12  # Poisson sampling at q = 0.1
    with pytest.raises(ValueError, match=r"participation must be in \(0, 1\], got 0.0"):
        SimulationConfig(participation=0.0)

"""The gateway's downlink deltas in the in-process harness: devices train from the re-based version."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the population exports the demo bundle on first use (workstation extra)")

from fmfl.aggregator.core.downlink import DownlinkCompressor, DownlinkConfigError
from fmfl.protocol import ProtocolError
from fmfl.simulation import Population, SimulationConfig, build_population, run_simulation

DOWNLINK = "topk:0.05+int8+ef"


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    return build_population(clients=4, max_samples=400, seed=0, cache_dir=tmp_path_factory.mktemp("cache"),
                            image_size=64, optimizer="adamw")


def test_one_round_equals_the_gateways_rebase_of_the_dense_result(population: Population) -> None:
    # Oracle: round 1 trains from the initial weights either way, so the rule's model is the dense run's
    # model, and the version the devices get must be exactly the gateway's re-base of it.
    dense = run_simulation(population, SimulationConfig(rounds=1, lr=3e-4))
    lossy = run_simulation(population, SimulationConfig(rounds=1, lr=3e-4, downlink_codec=DOWNLINK))

    expected = DownlinkCompressor(DOWNLINK, population.initial.size).rebase(population.initial, 0,
                                                                           dense.final_weights)
    np.testing.assert_array_equal(lossy.final_weights, expected)
    changed = np.count_nonzero(lossy.final_weights != population.initial)
    assert 0 < changed <= int(np.ceil(0.05 * population.initial.size))
    assert np.count_nonzero(dense.final_weights != population.initial) > 10 * changed
    assert 0 < lossy.rounds[0].downlink_bytes < 0.1 * 4 * population.initial.size
    assert dense.rounds[0].downlink_bytes == 0


def test_later_rounds_train_from_the_rebased_version(population: Population) -> None:
    dense = run_simulation(population, SimulationConfig(rounds=3, lr=3e-4))
    lossy = run_simulation(population, SimulationConfig(rounds=3, lr=3e-4, downlink_codec=DOWNLINK))
    again = run_simulation(population, SimulationConfig(rounds=3, lr=3e-4, downlink_codec=DOWNLINK))

    np.testing.assert_array_equal(lossy.final_weights, again.final_weights)  # deterministic, residual included
    assert not np.array_equal(lossy.final_weights, dense.final_weights)
    assert all(r.downlink_bytes > 0 for r in lossy.rounds)
    # error feedback delays coordinates, it does not lose them: the model still moves toward dense's
    lossy_move = np.linalg.norm(lossy.final_weights - population.initial)
    dense_move = np.linalg.norm(dense.final_weights - population.initial)
    assert 0.3 * dense_move < lossy_move <= 1.01 * dense_move


@pytest.mark.parametrize(("spec", "error", "match"), [
    ("topk:0.05,per_tensor+int8", DownlinkConfigError, "per_tensor options are not supported downlink"),
    ("topk:1.5+int8", ProtocolError, "fraction must be in"),
])
def test_a_downlink_codec_the_gateway_refuses_fails_before_any_round(
        population: Population, spec: str, error: type[Exception], match: str) -> None:
    initial = population.initial.copy()
    with pytest.raises(error, match=match):
        run_simulation(population, SimulationConfig(rounds=1, downlink_codec=spec))
    np.testing.assert_array_equal(population.initial, initial)  # the shared population is untouched

"""A density warm-up schedule in the in-process harness: the devices' residual survives the codec change."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the population exports the demo bundle on first use (workstation extra)")

from fmfl.simulation import Population, SimulationConfig, build_population, run_simulation


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    # AdamW at 64 px: the warm-up test's premise (every coordinate moves about lr a step) is AdamW's.
    return build_population(clients=4, max_samples=400, seed=0, cache_dir=tmp_path_factory.mktemp("cache"),
                            image_size=64, optimizer="adamw")


def test_switching_to_the_same_codec_keeps_the_residual_exactly(population: Population) -> None:
    # Oracle: a "schedule" whose phases all use the steady codec must equal the plain codec bit for bit;
    # a residual lost (or reset) at the switch would change every later round.
    plain = run_simulation(population, SimulationConfig(codec="topk:0.01+int8+ef", rounds=4))
    switched = run_simulation(population, SimulationConfig(codec="topk:0.01+int8+ef@2,topk:0.01+int8+ef", rounds=4))
    np.testing.assert_array_equal(plain.final_weights, switched.final_weights)


def test_a_denser_warm_up_moves_the_model_further_in_its_rounds(population: Population) -> None:
    sparse = run_simulation(population, SimulationConfig(codec="topk:0.01+int8+ef", rounds=2))
    warm = run_simulation(population, SimulationConfig(codec="topk:0.2+int8+ef@2,topk:0.01+int8+ef", rounds=2))
    moved = [float(np.linalg.norm(r.final_weights - population.initial)) for r in (sparse, warm)]
    assert moved[1] > 3 * moved[0], moved  # 20% of the coordinates a round against 1%
    with pytest.raises(ValueError, match="must end with the steady codec"):
        run_simulation(population, SimulationConfig(codec="topk:0.2+int8+ef@2", rounds=1))

"""The in-process harness on the multimodal task: captioned Fashion-MNIST images, the real dual encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmfl.simulation import SimulationConfig, build_population, run_simulation


@pytest.mark.slow
def test_dual_encoder_population_trains_contrastively_and_scores_zero_shot(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the population exports the demo bundle on first use (workstation extra)")
    # Prepare: the demo's dual encoder (projection heads trainable), 3 devices, validation carved out
    population = build_population(task="multimodal", clients=3, max_samples=400, seed=0, validation_fraction=0.1,
                                  cache_dir=tmp_path)
    shard = population.clients[0].train

    # Execute
    result = run_simulation(population, SimulationConfig(rounds=3, eval_every=1))

    # Assert: unlabelled image-caption pairs as the device reads the demo's caption shards; the referee is
    # zero-shot classification of the validation images from the class prompts, and training lifts it
    assert shard.labels is None
    assert set(shard.inputs) == {"image.embedding", "text.embedding"}
    assert shard.inputs["image.embedding"].dtype == np.float32
    assert len(population.evaluator.test_y) == 40  # 10% of the 400 training images; the test set is not loaded
    assert result.final_accuracy > result.accuracy[0] + 0.1, result.accuracy
    assert all(len(r.accepted) == 3 for r in result.rounds)

"""The in-process harness on the text task: real WordNet glosses, the real MiniLM + LoRA bundle, ORT training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmfl.demo.tasks import DemoData, load_text
from fmfl.simulation import SimulationConfig, build_population, run_simulation
from fmfl.simulation.population import carve_validation


def test_validation_is_carved_from_the_training_glosses() -> None:
    # Prepare: real glosses; a sentinel test set that must never reach the referee
    real = load_text(200, seed=0)
    assert isinstance(real.train_x, list)
    data = DemoData(real.train_x, real.train_y, ["TEST GLOSS"] * 7, np.zeros(7, dtype=np.int64), real.label_names)

    # Execute
    carved = carve_validation(data, 0.1, seed=0)

    # Assert: 10% of the training glosses, disjoint from the rest, labels kept with their glosses, seeded
    assert isinstance(carved.train_x, list)
    assert isinstance(carved.test_x, list)
    assert (len(carved.train_x), len(carved.test_x)) == (180, 20)
    assert not set(carved.train_x) & set(carved.test_x)
    assert sorted(carved.train_x + carved.test_x) == sorted(real.train_x)
    assert "TEST GLOSS" not in carved.test_x
    label_of = dict(zip(real.train_x, real.train_y.tolist(), strict=True))
    assert [label_of[t] for t in carved.test_x] == carved.test_y.tolist()
    assert carve_validation(data, 0.1, seed=0).test_x == carved.test_x
    assert carve_validation(data, 0.1, seed=1).test_x != carved.test_x


def test_an_unknown_task_is_refused_before_anything_is_exported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown task 'audio'; choose one of vision, text, multimodal"):
        build_population(task="audio", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no bundle, no feature cache


@pytest.mark.slow
def test_text_population_trains_loras_on_real_glosses(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the population exports the demo bundle on first use (workstation extra)")
    # Prepare: the demo's text bundle (LoRA on the last 2 layers + head), 3 devices, validation carved out
    population = build_population(task="text", clients=3, max_samples=300, seed=0, validation_fraction=0.1,
                                  cache_dir=tmp_path)
    features = population.clients[0].train.inputs
    total = sum(c.num_samples for c in population.clients)

    # Execute
    result = run_simulation(population, SimulationConfig(rounds=3, lr=3e-3, eval_every=1))
    again = build_population(task="text", clients=3, max_samples=300, seed=0, validation_fraction=0.1,
                             cache_dir=tmp_path)

    # Assert: the suffix takes hidden states, not token ids; training lifts validation accuracy; cache reused
    assert set(features) == {"encoder.hidden", "encoder.attention_mask"}
    assert features["encoder.hidden"].dtype == np.float32
    assert features["encoder.hidden"].shape[1:] == (32, 384)  # layer 4's hidden states, 32 tokens
    assert 200 <= total <= 230  # 270 glosses minus each device's 20% hold-out
    assert len(population.evaluator.test_y) == 30  # the validation split is the referee
    assert result.final_accuracy > result.accuracy[0] + 0.1, result.accuracy
    np.testing.assert_array_equal(again.clients[0].train.labels, population.clients[0].train.labels)
    assert again.setup_seconds < population.setup_seconds

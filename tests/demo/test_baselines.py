"""The demo's baselines and personalized evaluation on real data: Fashion-MNIST and a real exported bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmfl.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from fmfl.demo.baselines import (
    LEARNING_RATES,
    LEARNING_RATES_BY_OPTIMIZER,
    centralized_tuned,
    classic,
    linear_probe,
    local_only,
    probe_features,
    read_devices,
)
from fmfl.demo.tasks import TASKS, DemoData
from fmfl.edge_client.data import LocalDataset
from fmfl.simulation.population import carve_validation


def test_probe_features_mean_pool_sequences_over_the_attention_mask() -> None:
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.int64)

    out = probe_features({"encoder.hidden_states": hidden, "attention_mask": mask})

    # Oracle: the mean of the unmasked positions only (the padded ones must not count).
    np.testing.assert_allclose(out, [hidden[0, :2].mean(axis=0), hidden[1, :1].mean(axis=0)])


def test_probe_features_of_a_dual_encoder_use_the_image_tower_only() -> None:
    image, text = np.ones((4, 8), np.float32), np.zeros((4, 5), np.float32)
    assert probe_features({"image.embedding": image, "text.embedding": text}).shape == (4, 8)


@pytest.mark.integration  # trains on 2,000 real images (seconds)
def test_classic_logistic_regression_on_real_pixels_learns_fashion_mnist() -> None:
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")

    result = classic(train.images[:2000], train.labels[:2000], test.images[:1000], test.labels[:1000])

    assert 0.70 < result["accuracy"] < 0.95, result  # 10 classes: chance is 0.10
    assert result["what"] == "logistic regression on raw pixels"
    assert result["samples"] == 2000


@pytest.mark.integration  # four logistic regressions on 1,500 real images (seconds)
def test_linear_probe_chooses_c_on_its_validation_split_and_scores_the_test_set() -> None:
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    pixels = LocalDataset(inputs={"x": train.images[:1500].reshape(1500, -1) / 255.0}, labels=train.labels[:1500])
    held = LocalDataset(inputs={"x": test.images[:500].reshape(500, -1) / 255.0}, labels=test.labels[:500])

    result = linear_probe(pixels, held, cs=(1e-6, 1e-2))

    # C=1e-6 all but zeroes the weights (about chance); the validation split must pick the other one.
    scores = {t["C"]: t["validation_accuracy"] for t in result["tried"]}
    assert scores[1e-6] < 0.5 < scores[1e-2], scores
    assert result["C"] == 1e-2
    assert result["validation_accuracy"] == scores[1e-2]
    assert result["samples"] == 1350  # the 10% validation split is not trained on
    assert 0.6 < result["accuracy"] < 0.95, result
    with pytest.raises(ValueError, match="at least one C"):
        linear_probe(pixels, held, cs=())


def test_classic_tfidf_on_texts() -> None:
    texts = ["a red apple fruit", "green apple fruit", "a fast car", "a red car engine"] * 10
    labels = np.array([0, 0, 1, 1] * 10)
    result = classic(texts, labels, ["apple fruit", "car engine"], np.array([0, 1]))
    assert result["accuracy"] == 1.0
    assert result["what"].startswith("TF-IDF")


def test_validation_is_carved_from_training_and_the_test_set_is_dropped() -> None:
    data = DemoData(np.arange(100).reshape(100, 1), np.arange(100) % 10, np.full((7, 1), -1), np.zeros(7),
                    tuple(FASHION_MNIST_CLASSES))

    carved = carve_validation(data, 0.1, seed=0)

    assert isinstance(carved.train_x, np.ndarray)
    assert isinstance(carved.test_x, np.ndarray)
    assert len(carved.train_y) == 90
    assert len(carved.test_y) == 10
    train_rows, val_rows = set(carved.train_x[:, 0]), set(carved.test_x[:, 0])
    assert not train_rows & val_rows
    assert train_rows | val_rows == set(range(100))
    assert -1 not in val_rows  # no test sample can reach the referee
    np.testing.assert_array_equal(carve_validation(data, 0.1, seed=0).test_x, carved.test_x)  # seeded
    with pytest.raises(ValueError, match="validation_fraction"):
        carve_validation(data, 0.0, seed=0)


def test_baselines_refuse_user_data_before_doing_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fmfl.cli import main

    code = main(["demo", "--baselines", "--data", str(tmp_path / "mine"), "--runs-dir", str(tmp_path / "runs")])

    assert code == 2
    assert "--baselines compares against the preset tasks' data sets" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing written


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, tiny_vit_bundle: Path) -> dict[str, object]:
    """Two devices with 150 real Fashion-MNIST images each, read through the real device path."""
    from fmfl.bundle import verify_bundle
    from fmfl.demo.evaluate import Evaluator
    from fmfl.edge_client.data import write_npz

    root = tmp_path_factory.mktemp("fed")
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    # Label skew as in the demo, to the extreme: each device holds two classes (rows scattered in the pool).
    parts = [np.flatnonzero(np.isin(train.labels, pair))[:150] for pair in ((0, 1), (7, 8))]
    shards = []
    for i, rows in enumerate(parts):
        (root / f"c{i:02d}").mkdir()
        shards.append(write_npz(root / f"c{i:02d}" / "data.npz", train.images[rows], train.labels[rows]))
    devices, trainer = read_devices(tiny_vit_bundle, shards, parts, root)
    manifest = verify_bundle(tiny_vit_bundle)
    evaluator = Evaluator(tiny_vit_bundle, manifest, test.images[:200], test.labels[:200], (), threads=1)
    initial = np.load(tiny_vit_bundle / "initial_weights.npy")
    return {"devices": devices, "trainer": trainer, "evaluator": evaluator, "initial": initial,
            "labels": train.labels}


def test_devices_are_read_with_their_own_split_and_rows(federation: dict[str, object]) -> None:
    devices, labels = federation["devices"], federation["labels"]
    assert isinstance(devices, list)
    assert isinstance(labels, np.ndarray)
    for d in devices:
        assert len(d.train) == 120
        assert len(d.held_out) == 30
        np.testing.assert_array_equal(d.train.labels, labels[d.train_rows])  # rows replay the device's split


def test_centralized_is_tuned_on_validation_and_local_only_reports_mean_and_worst(
        federation: dict[str, object]) -> None:
    trainer, evaluator, initial, devices = (federation[k] for k in ("trainer", "evaluator", "initial", "devices"))
    before = evaluator.accuracy(initial)  # type: ignore[attr-defined]

    central = centralized_tuned(trainer, initial, devices, evaluator, max_epochs=3, batch_size=32)  # type: ignore[arg-type]
    local = local_only(trainer, initial, devices, evaluator, lr=central["lr"], max_epochs=2,  # type: ignore[arg-type]
                       batch_size=32)

    tried = central["tried"]
    assert len(tried) == 3 * len(LEARNING_RATES)
    assert central["lr"] in LEARNING_RATES
    assert central["validation_accuracy"] == max(t["validation_accuracy"] for t in tried)  # the best was kept
    assert central["samples"] == 216  # 240 pooled training samples minus the 10% validation split
    assert central["accuracy"] > before + 0.1, (before, central)  # 4 classes of 10 seen: up to about 0.4
    assert set(local["per_device"]) == {"c00", "c01"}
    assert set(local["weights"]) == {"c00", "c01"}
    assert local["worst"] == min(v["accuracy"] for v in local["per_device"].values()) <= local["mean"]


def test_personalized_scores_each_device_on_its_own_held_out_split(federation: dict[str, object]) -> None:
    from fmfl.demo.personalized import personalized

    trainer, evaluator, initial, devices = (federation[k] for k in ("trainer", "evaluator", "initial", "devices"))
    local = local_only(trainer, initial, devices, evaluator, lr=1e-2, max_epochs=3, batch_size=32)  # type: ignore[arg-type]

    # The untrained initial model stands in for the global one: a device's two-class model must beat it there.
    result = personalized(trainer, initial, local["weights"], devices, lr=1e-2, batch_size=32)  # type: ignore[arg-type]

    assert set(result["per_device"]) == {"c00", "c01"}
    for model in ("global", "local_only", "global_finetuned"):
        scores = [s[model] for s in result["per_device"].values()]
        assert result[model]["worst"] == min(scores)
        assert result[model]["mean"] == pytest.approx(np.mean(scores))
    assert result["local_only"]["mean"] > result["global"]["mean"] + 0.2, result
    assert result["global_finetuned"]["mean"] > result["global"]["mean"] + 0.2, result


@pytest.mark.slow
def test_demo_with_baselines_reports_every_baseline_and_the_personalized_table(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the demo exports its bundle on first use (workstation extra)")
    import json

    from fmfl.cli import main

    # Execute: 3 clients, 3 rounds on a 1,500-sample slice, with the baselines
    assert main(["demo", "--task", "vision", "--clients", "3", "--rounds", "3", "--max-samples", "1500",
                 "--baselines", "--runs-dir", str(tmp_path / "runs"), "--run-id", "r"]) == 0

    # Assert
    run = tmp_path / "runs" / "r"
    b = json.loads((run / "run.json").read_text())["baselines"]
    assert 0.6 < b["classic"]["accuracy"] < 0.95
    assert b["classic"]["converged"]
    assert 0.6 < b["linear_probe"]["accuracy"] < 0.95
    assert b["linear_probe"]["converged"]
    assert b["centralized_tuned"]["lr"] in LEARNING_RATES_BY_OPTIMIZER[TASKS["vision"].optimizer]
    assert b["centralized_tuned"]["accuracy"] > 0.6
    assert len(b["local_only"]["per_device"]) == 3
    assert b["local_only"]["worst"] <= b["local_only"]["mean"]
    assert set(b["personalized"]["per_device"]) == {"c00", "c01", "c02"}
    report = (run / "report.md").read_text()
    for row in ("| classic: logistic regression on raw pixels |", "| linear probe (frozen features) |",
                "| centralized fine-tuning, tuned on validation |", "| local-only, worst device |",
                "| global model + 1 local epoch |"):
        assert row in report

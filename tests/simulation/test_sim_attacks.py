"""Each attack against a plain numpy oracle of its paper's definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmfl.simulation import choose_malicious, make_attack
from fmfl.simulation.attacks import ALittleIsEnough, LabelFlip, NoAttack, Scaling, SignFlip, alie_z_max, flip_labels


def _updates(n: int = 10, size: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"c{i:02d}": rng.normal(size=size).astype(np.float32) for i in range(n)}


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def test_no_attack_sends_the_honest_updates() -> None:
    honest = _updates()
    sent = NoAttack().craft(honest, ["c01"])
    assert set(sent) == {"c01"}
    assert sent["c01"] is honest["c01"]


def test_sign_flip_negates_only_the_malicious_updates() -> None:
    honest = _updates()
    before = {k: v.copy() for k, v in honest.items()}
    sent = SignFlip().craft(honest, ["c02", "c05"])
    assert set(sent) == {"c02", "c05"}
    for c in sent:
        np.testing.assert_array_equal(sent[c], -before[c])
        assert sent[c].dtype == np.float32
    for c in honest:  # the honest updates themselves are untouched
        np.testing.assert_array_equal(honest[c], before[c])


def test_scaling_multiplies_by_the_factor() -> None:
    honest = _updates()
    sent = Scaling(10).craft(honest, ["c03"])
    np.testing.assert_allclose(sent["c03"], 10.0 * honest["c03"].astype(np.float64), rtol=1e-6)
    assert np.linalg.norm(sent["c03"]) == pytest.approx(10 * np.linalg.norm(honest["c03"]), rel=1e-6)


@pytest.mark.parametrize("factor", [float("inf"), float("nan"), True, "10"])
def test_scaling_refuses_a_bad_factor(factor: object) -> None:
    with pytest.raises(ValueError, match="factor must be a finite number"):
        Scaling(factor)  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "m"), [(10, 2), (50, 10), (20, 1), (7, 3)])
def test_alie_z_max_follows_the_paper(n: int, m: int) -> None:
    # Baruch et al. 2019: s = floor(n/2 + 1) - m, z_max with Phi(z_max) = (n - s) / n.
    s = math.floor(n / 2 + 1) - m
    z = alie_z_max(n, m)
    assert _phi(z) == pytest.approx((n - s) / n, abs=1e-9)


def test_alie_z_max_for_ten_clients_two_attackers() -> None:
    assert alie_z_max(10, 2) == pytest.approx(0.2533471, abs=1e-6)  # Phi^-1(0.6), a table value


@pytest.mark.parametrize(("n", "m", "message"), [
    (10, 0, "need integers"), (10, 10, "need integers"), (10, 6, "need no benign supporters"),
])
def test_alie_z_max_refuses_impossible_settings(n: int, m: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        alie_z_max(n, m)


def test_alie_sends_mean_minus_z_std_of_the_benign_updates() -> None:
    honest = _updates(n=10, size=200)
    malicious = ["c01", "c07"]
    attack = ALittleIsEnough()
    sent = attack.craft(honest, malicious)
    benign = np.stack([honest[c] for c in sorted(honest) if c not in malicious]).astype(np.float64)
    z = alie_z_max(10, 2)
    expected = benign.mean(axis=0) - z * benign.std(axis=0)
    assert attack.last_z == pytest.approx(z)
    for c in malicious:
        np.testing.assert_allclose(sent[c], expected, rtol=1e-6, atol=1e-7)
    # The attackers' own honest updates do not enter the estimate.
    honest["c01"] = np.full(200, 1e6, dtype=np.float32)
    np.testing.assert_array_equal(attack.craft(honest, malicious)["c07"], sent["c07"])


def test_alie_with_an_explicit_z() -> None:
    honest = _updates(n=5, size=20)
    sent = ALittleIsEnough(z=1.5).craft(honest, ["c00"])
    benign = np.stack([honest[c] for c in ("c01", "c02", "c03", "c04")]).astype(np.float64)
    np.testing.assert_allclose(sent["c00"], benign.mean(0) - 1.5 * benign.std(0), rtol=1e-6, atol=1e-7)


def test_alie_needs_a_benign_client() -> None:
    honest = _updates(n=2)
    with pytest.raises(ValueError, match="no benign update"):
        ALittleIsEnough(z=1.0).craft(honest, ["c00", "c01"])


def test_label_flip_maps_l_to_nine_minus_l() -> None:
    labels = np.arange(10, dtype=np.int64)
    original = labels.copy()
    flipped = LabelFlip().poison_labels(labels, 10)
    np.testing.assert_array_equal(flipped, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(flip_labels(flipped, 10), original)  # an involution
    np.testing.assert_array_equal(labels, original)  # input not modified in place
    assert LabelFlip.poisons_data
    assert not SignFlip.poisons_data


def test_label_flip_refuses_labels_out_of_range() -> None:
    labels = np.array([0, 3, 10], dtype=np.int64)
    with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
        flip_labels(labels, 10)
    np.testing.assert_array_equal(labels, [0, 3, 10])


def test_make_attack_by_name_and_unknown_names() -> None:
    assert isinstance(make_attack("scaling", factor=3.0), Scaling)
    assert make_attack("alie").name == "alie"
    with pytest.raises(ValueError, match="unknown attack 'boom'; choose one of: none, sign-flip"):
        make_attack("boom")


def test_malicious_clients_are_fixed_by_the_seed() -> None:
    ids = tuple(f"c{i:02d}" for i in range(10))
    chosen = choose_malicious(ids, 0.2, seed=0)
    assert len(chosen) == 2
    assert set(chosen) <= set(ids)
    assert list(chosen) == sorted(chosen)
    assert choose_malicious(ids, 0.2, seed=0) == chosen
    assert choose_malicious(ids, 0.0, seed=0) == ()
    assert len(choose_malicious(ids, 0.3, seed=1)) == 3

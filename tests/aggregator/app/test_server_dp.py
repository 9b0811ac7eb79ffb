"""``fmfl aggregator --strategy dp-fedavg`` through a real Mosquitto, and its option checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.gateway_harness import AggregatorProcess, Listener, SimDevice, aggregator_args, bundle_info, decode_all
from support.gateway_harness import read_metrics as read_metrics_lines

from fmfl.aggregation.rules.dp_fedavg import round_rng
from fmfl.aggregator.cli.aggregator import settings_from_args
from fmfl.aggregator.durable.store import GlobalStore
from fmfl.cli import build_parser
from fmfl.errors import FmflError
from fmfl.privacy.accountant import epsilon
from fmfl.protocol import GlobalModel, Limits, Topics


def _delta(cid: str) -> object:
    base = sum(map(ord, cid))

    def delta(rnd: int, size: int) -> np.ndarray:
        return (0.02 * np.sin(np.arange(size) * 0.37 + base + 10 * rnd)).astype(np.float32)

    return delta


def test_dp_fedavg_rounds_report_epsilon_and_match_the_clip_and_noise_oracle(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    # Prepare: 3 devices, all selected every round, clip below their delta norms.
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    state = tmp_path / "state"
    agg = AggregatorProcess(
        tmp_path,
        aggregator_args(
            gateway_bundle, mosquitto.port, state, rounds=3, k=3, over_select=1.0, codec="dense",
            round_timeout=30, start_timeout=20, strategy="dp_fedavg", dp_noise_multiplier=0.8,
            dp_clip=0.05, dp_fleet_size=3,
        ),
    )  # fmt: skip
    watcher = Listener(mosquitto.port, [Topics("default").global_model])
    assert watcher.wait_for(lambda m: len(decode_all(m, Limits.for_vector_size(size), GlobalModel)) >= 1, 20), (
        agg.stderr
    )
    watcher.close()
    devices = [SimDevice(mosquitto.port, f"dev-{i}", bundle_id, size, _delta(f"dev-{i}")).start()  # type: ignore[arg-type]
               for i in range(3)]
    # Execute
    try:
        assert agg.wait(60) == 0, agg.stderr
    finally:
        for d in devices:
            d.stop()
    # Assert: epsilon on every metrics line, growing, equal to the accountant's for q = 1.
    lines = read_metrics_lines(state)
    assert [m["round"] for m in lines] == [1, 2, 3]
    eps = [m["dp_epsilon"] for m in lines]
    assert eps == pytest.approx([epsilon(0.8, 1.0, r, 1e-5) for r in (1, 2, 3)], rel=1e-9)
    assert eps[0] < eps[1] < eps[2]
    assert all(m["dp_delta"] == 1e-5 and m["strategy"] == "dp-fedavg" for m in lines)
    assert "epsilon" in agg.stdout
    assert f"{eps[-1]:.4g}" in agg.stdout
    # The models: clipped deltas / K plus the noise of the secret seed kept in the server state.
    store = GlobalStore(state / "models")
    seed = store.load_state(0)["noise_seed"]
    expected = initial.astype(np.float64)
    for rnd in (1, 2, 3):
        total = np.zeros(size)
        for d in devices:
            x = d.sent[rnd][1].to_dense().astype(np.float64)
            total += x * min(1.0, 0.05 / np.linalg.norm(x))
        noise = round_rng(seed, rnd - 1).normal(0.0, 0.8 * 0.05 / 3, size=size)
        expected = (expected + total / 3 + noise).astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(store.load_weights(rnd)[1], expected, rtol=0, atol=1e-6)


def _settings(tmp_path: Path, gateway_bundle: Path, *extra: str) -> object:
    argv = ["aggregator", *aggregator_args(gateway_bundle, 1883, tmp_path / "s", rounds=2, k=4), *extra]
    return settings_from_args(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dp-clip", "1"], "--dp-clip needs --strategy dp-fedavg"),
        (["--strategy", "dp-fedavg", "--dp-clip", "1", "--dp-fleet-size", "9"],
         "--strategy dp-fedavg needs --dp-noise-multiplier"),
        (["--strategy", "dp-fedavg", "--dp-noise-multiplier", "1", "--dp-fleet-size", "9"],
         "--strategy dp-fedavg needs --dp-clip"),
        (["--strategy", "dp-fedavg", "--dp-noise-multiplier", "-1", "--dp-clip", "1", "--dp-fleet-size", "9"],
         "--dp-noise-multiplier must be a positive finite number"),
        (["--strategy", "dp-fedavg", "--dp-noise-multiplier", "1", "--dp-clip", "1"], "needs --dp-fleet-size"),
        (["--strategy", "dp-fedavg", "--dp-noise-multiplier", "1", "--dp-clip", "1", "--dp-fleet-size", "3"],
         "--dp-fleet-size 3 is smaller than --clients-per-round 4"),
        (["--strategy", "dp-fedavg", "--dp-noise-multiplier", "1", "--dp-clip", "1", "--dp-fleet-size", "9",
          "--dp-delta", "2"], r"--dp-delta must be in \(0, 1\)"),
        (["--strategy", "dp-fedavg", "--dp-noise-multiplier", "1", "--dp-clip", "1", "--dp-fleet-size", "9",
          "--dp-clipped-count-stddev", "2"], "--dp-clipped-count-stddev needs --dp-adaptive-clip"),
    ],
)  # fmt: skip
def test_bad_dp_options_are_refused_by_name(
    tmp_path: Path, gateway_bundle: Path, extra: list[str], message: str
) -> None:
    with pytest.raises(FmflError, match=message):
        _settings(tmp_path, gateway_bundle, *extra)
    assert not (tmp_path / "s").exists()  # nothing was created


def test_dp_options_become_strategy_options(tmp_path: Path, gateway_bundle: Path) -> None:
    settings = _settings(
        tmp_path, gateway_bundle, "--strategy", "dp-fedavg", "--dp-noise-multiplier", "1.1", "--dp-clip", "0.5",
        "--dp-fleet-size", "100", "--dp-adaptive-clip", "--dp-target-quantile", "0.7",
    )  # fmt: skip
    options = settings.strategy_options  # type: ignore[attr-defined]
    # K = 4 is the denominator; ceil(4 * 1.3) = 6 invited of 100 is the sampling rate.
    assert options == {
        "noise_multiplier": 1.1, "clip_norm": 0.5, "expected_clients": 4, "sampling_rate": 0.06, "fleet_size": 100,
        "delta": 1e-5, "accounting_sampling": "poisson", "adaptive_clip": True, "target_quantile": 0.7,
        "clip_learning_rate": 0.2,
    }  # fmt: skip
    json.dumps(options)


def test_dp_fedavg_with_workers_is_refused_at_start_up(gateway_bundle: Path, tmp_path: Path) -> None:
    from fmfl.aggregator.app.server import build_engine
    from fmfl.aggregator.core.observer import RoundObserver

    settings = _settings(
        tmp_path, gateway_bundle, "--strategy", "dp-fedavg", "--dp-noise-multiplier", "1", "--dp-clip", "1",
        "--dp-fleet-size", "9", "--workers", "w1,w2",
    )  # fmt: skip
    with pytest.raises(FmflError, match="--strategy dp-fedavg cannot split rounds"):
        build_engine(settings, RoundObserver())  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()  # refused before anything was written

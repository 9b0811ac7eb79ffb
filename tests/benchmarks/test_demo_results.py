"""``benchmarks.demo_results``: the goal arithmetic on hand-made curves, and the harness in --quick mode."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# By path: under pytest's importlib mode the name "benchmarks" is this test folder, not the repository's.
_spec = importlib.util.spec_from_file_location("demo_results", ROOT / "benchmarks" / "demo_results.py")
assert _spec is not None
assert _spec.loader is not None
sys.path.insert(0, str(ROOT))
demo_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_results)
max_drop_after, rounds_to, traffic = demo_results.max_drop_after, demo_results.rounds_to, demo_results.traffic


def test_rounds_to_is_the_first_round_at_or_above_the_target() -> None:
    curve = {0: 0.9, 1: 0.5, 2: 0.84, 3: 0.80, 4: 0.86}
    assert rounds_to(curve, 0.84) == 2  # round 0 (the initial model) never counts
    assert rounds_to(curve, 0.87) is None


def test_max_drop_only_counts_falls_between_consecutive_evaluations_after_the_cutoff() -> None:
    curve = {10: 0.9, 20: 0.5, 21: 0.80, 22: 0.77, 23: 0.79, 24: 0.785}
    assert max_drop_after(curve, 20) == pytest.approx(3.0)  # 80 -> 77; the fall at round 20 is before it
    assert max_drop_after({21: 0.5, 22: 0.6}, 20) == 0.0


def test_traffic_is_per_client_round_and_relative_to_the_dense_trainable_set() -> None:
    record = {"num_trainable": 100, "rounds": [
        {"status": "ok", "participants": 2, "bytes_up": 20, "bytes_down": 80},
        {"status": "failed", "participants": 0, "bytes_up": 999, "bytes_down": 999},
        {"status": "ok", "participants": 2, "bytes_up": 20, "bytes_down": 0}]}
    t = traffic(record)
    assert t["up"] == 10
    assert t["down"] == 20
    assert t["up_fraction"] == 0.025
    assert t["down_fraction"] == 0.05
    assert t["published"] == 20
    assert not t["down_received"]  # no device counts: the gateway's figure stands


def test_traffic_down_is_what_the_devices_received_when_they_counted_it() -> None:
    # The gateway publishes each version dense (400 B) besides its delta; devices on deltas never get it.
    record = {"num_trainable": 100, "rounds": [
        {"status": "ok", "participants": 2, "bytes_up": 20, "bytes_down": 400 + 2 * 30},
        {"status": "ok", "participants": 2, "bytes_up": 20, "bytes_down": 400 + 2 * 30}],
        "downlink": {"devices": 2, "bytes": {"delta": 3 * 20, "global": 400, "task": 4 * 10},
                     "models": {"delta": 3, "dense": 1}}}
    t = traffic(record)
    assert t["down_received"]
    assert t["down"] == (60 + 400 + 40) / 4  # bytes received over the 4 versions the devices held
    assert t["down_fraction"] == 125 / 400
    assert t["published"] == 230  # (2 x 460) over 4 client-rounds


@pytest.mark.slow
def test_quick_run_writes_the_task_section_with_baselines_and_goals(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the demo exports its bundle on first use (workstation extra)")
    out = tmp_path / "results.md"
    out.write_text("# Results\n\n## text\n\nkept\n")

    result = subprocess.run([sys.executable, "-m", "benchmarks.demo_results", "--quick", "--tasks", "vision",
                             "--out", str(out), "--runs-dir", str(tmp_path / "runs")], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = out.read_text()
    assert "## text\n\nkept" in text  # another task's section is left as it was
    for needle in ("| 1. classic: logistic regression on raw pixels |", "| 2. linear probe", "| 3. centralized",
                   "| 4. local-only, mean / worst device |", "| 5. federated, dense updates |",
                   "| 6. **federated, default codec**", "Personalized", "- accuracy >= 88.5%:",
                   "- rounds to 95% of dense's final"):
        assert needle in text
    assert (tmp_path / "results_vision.png").stat().st_size > 5000

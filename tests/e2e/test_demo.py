"""``fmfl demo`` end to end: real processes, a real broker, real data; and its failure paths."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the demo exports its bundle on first use (workstation extra)")

from fmfl.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle cache for the module: the first run exports, later runs reuse."""
    return tmp_path_factory.mktemp("cache")


def demo(tmp_path: Path, cache: Path, *extra: str) -> list[str]:
    return ["demo", "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(cache), "--run-id", "r", *extra]


def children_of(run_dir: Path) -> list[int]:
    """Pids of live processes whose command line mentions the run folder (the demo's children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().split()[2]
            except OSError:
                continue
            if str(run_dir) in cmdline and state != "Z":
                pids.append(int(entry.name))
    return pids


def test_vision_demo_runs_rounds_and_writes_the_report(tmp_path: Path, cache: Path) -> None:
    # Execute: 3 clients, 3 rounds, a 1,500-sample slice of Fashion-MNIST, with the centralized baseline
    assert main(demo(tmp_path, cache, "--task", "vision", "--clients", "3", "--rounds", "3",
                     "--max-samples", "1500", "--centralized")) == 0

    # Assert
    run = tmp_path / "runs" / "r"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ok = [m for m in metrics if m["status"] == "ok"]
    assert len(ok) == 3
    assert all(m["participants"] >= 2 for m in ok)
    record = json.loads((run / "run.json").read_text())
    accuracy = {int(k): v for k, v in record["accuracy"].items()}
    assert sorted(accuracy) == [0, 1, 2, 3]
    assert accuracy[3] > accuracy[0] + 0.05  # federated training improved the global model on the test set
    assert 0.2 < record["centralized"]["accuracy"] <= 1.0
    report = (run / "report.md").read_text()
    assert "Test accuracy" in report
    assert "Centralized" in report
    assert "| 3 | ok |" in report
    # Downlink deltas (docs/protocol.md 2b): the devices counted what they received: one dense model each
    # (the version current when it joined), every later version as a delta.
    down = record["downlink"]
    assert down["devices"] == 3
    assert down["models"]["dense"] == 3
    assert down["models"]["delta"] >= 3
    assert down["bytes"]["delta"] < down["bytes"]["global"]
    assert "**Downlink**" in report
    assert (run / "accuracy.png").stat().st_size > 1000
    assert (run / "bytes.png").stat().st_size > 1000
    assert children_of(run) == []


def test_demo_runs_on_the_embedded_amqtt_broker(tmp_path: Path, cache: Path) -> None:
    """Where Mosquitto is not installed the demo falls back to amqtt in process (MQTT 3.1.1)."""
    assert main(demo(tmp_path, cache, "--task", "vision", "--clients", "2", "--rounds", "2", "--max-samples", "1000",
                     "--broker-kind", "amqtt")) == 0
    record = json.loads((tmp_path / "runs" / "r" / "run.json").read_text())
    assert len([m for m in record["rounds"] if m["status"] == "ok"]) == 2


def test_demo_on_the_users_own_text_data(tmp_path: Path, cache: Path) -> None:
    from fmfl.datasets.wordnet import load_wordnet_glosses
    from fmfl.edge_client.data import write_text_jsonl

    glosses = load_wordnet_glosses(num_categories=3)
    data = tmp_path / "mydata"
    data.mkdir()
    names = glosses.label_names
    rng = np.random.default_rng(0)  # the files list glosses category by category: take a random slice
    train = rng.choice(len(glosses.train_texts), 600, replace=False)
    test = rng.choice(len(glosses.test_texts), 200, replace=False)
    write_text_jsonl(data / "train.jsonl", [glosses.train_texts[i] for i in train],
                     [names[glosses.train_labels[i]] for i in train])
    write_text_jsonl(data / "test.jsonl", [glosses.test_texts[i] for i in test],
                     [names[glosses.test_labels[i]] for i in test])

    assert main(demo(tmp_path, cache, "--data", str(data), "--clients", "2", "--rounds", "2",
                     "--train", "head", "--codec", "dense")) == 0
    run = tmp_path / "runs" / "r"
    record = json.loads((run / "run.json").read_text())
    assert len([m for m in record["rounds"] if m["status"] == "ok"]) == 2
    assert "3 labels" not in record["bundle"]  # sanity: a path, not a description
    assert record["num_trainable"] == 384 * 3 + 3  # MiniLM mean-pooled embedding -> 3 classes


def test_missing_user_data_is_a_clear_error(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(demo(tmp_path, cache, "--data", str(tmp_path / "empty"))) == 2
    assert "must hold exactly one 'train*' file or folder" in capsys.readouterr().err


# Vision rounds take 0.1-0.6 s here (SGD on the head over cached features): with this many, a test that acts
# after round 1 acts while the run goes on.
LONG_RUN = 40


def _start_demo(tmp_path: Path, cache: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "fmfl.cli", *demo(tmp_path, cache, "--task", "vision", "--max-samples", "1200",
                                                   *extra)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _kill_leftovers(run: Path) -> None:
    """A demo killed by a failing test cannot stop its children (own sessions): do it here."""
    for pid in children_of(run):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise TimeoutError("condition not met")


def test_a_client_that_dies_is_reported_and_the_run_completes(tmp_path: Path, cache: Path) -> None:
    proc = _start_demo(tmp_path, cache, "--clients", "3", "--rounds", f"{LONG_RUN}", "--round-timeout", "30")
    run = tmp_path / "runs" / "r"
    try:
        # wait for the first round, then kill client c02 the hard way
        _wait_for(lambda: (run / "aggregator" / "metrics.jsonl").exists(), 300)
        victims = [p for p in children_of(run) if b"--client-id\0c02" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert victims
        os.kill(victims[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_leftovers(run)
    assert proc.returncode == 0, out
    report = (run / "report.md").read_text()
    assert "client c02 exited with code -9" in report
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len([m for m in metrics if m["status"] == "ok"]) == LONG_RUN
    assert children_of(run) == []


@pytest.mark.parametrize(("signum", "code", "how"), [(signal.SIGINT, 130, "the user (Ctrl-C)"),
                                                    (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_or_sigterm_stops_every_process_and_reports_what_completed(
    tmp_path: Path, cache: Path, signum: int, code: int, how: str
) -> None:
    # Far more rounds than can run before the signal (CI saw 50 rounds finish in 16 s, before it landed).
    proc = _start_demo(tmp_path, cache, "--clients", "2", "--rounds", "5000")
    run = tmp_path / "runs" / "r"
    try:
        _wait_for(lambda: (run / "aggregator" / "metrics.jsonl").exists(), 300)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_leftovers(run)
    assert proc.returncode == code, out
    report = (run / "report.md").read_text()
    assert f"interrupted by {how}" in report
    assert "did not complete every round" in report
    assert children_of(run) == []
    # the interrupt may land before the v0 evaluation finished: whatever was measured is finite
    assert all(np.isfinite(v) for v in json.loads((run / "run.json").read_text())["accuracy"].values())


def test_unreachable_broker_is_a_clear_error_and_leaves_nothing_running(tmp_path: Path, cache: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from fmfl.mqtt.mosquitto import free_port

    code = main(demo(tmp_path, cache, "--task", "vision", "--clients", "2", "--rounds", "1", "--max-samples", "1000",
                     "--broker", f"mqtt://127.0.0.1:{free_port()}"))
    assert code == 2
    err = capsys.readouterr().err
    assert "aggregator exited with code 2" in err
    assert "cannot reach the MQTT broker" in err
    run = tmp_path / "runs" / "r"
    assert (run / "report.md").exists()
    assert children_of(run) == []


def test_demo_with_central_and_local_dp_reports_epsilon_every_round(tmp_path: Path, cache: Path) -> None:
    assert main(demo(tmp_path, cache, "--task", "vision", "--clients", "3", "--rounds", "2", "--max-samples", "1500",
                     "--dp-noise-multiplier", "2", "--dp-clip", "0.5", "--local-dp-clip", "0.5",
                     "--local-dp-noise-multiplier", "8")) == 0
    run = tmp_path / "runs" / "r"
    ok = [m for m in (json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()) if m["status"] == "ok"]
    assert len(ok) == 2
    assert all(m["strategy"] == "dp-fedavg" for m in ok)
    assert 0 < ok[0]["dp_epsilon"] < ok[1]["dp_epsilon"]
    assert ok[0]["dp_sampling_rate"] == 1.0
    assert all(m["metrics"]["local_dp_epsilon"] > 0 for m in ok)  # the clients' own, averaged
    assert children_of(run) == []

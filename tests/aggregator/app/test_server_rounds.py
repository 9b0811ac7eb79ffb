"""``fmfl aggregator`` end to end through a real Mosquitto with simulated devices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from support.gateway_harness import (
    AggregatorProcess,
    Listener,
    SimDevice,
    aggregator_args,
    bundle_info,
    decode_all,
    fedavg,
    read_metrics,
)

from fmfl.aggregator.durable.store import GlobalStore
from fmfl.protocol import GlobalModel, Limits, RoundTask, Topics


def known_delta(cid: str) -> object:
    """Device ``cid``'s delta in round r: a fixed pattern, different per device and round."""
    base = sum(map(ord, cid))

    def delta(rnd: int, size: int) -> np.ndarray:
        x = np.arange(size, dtype=np.float64)
        return (0.01 * np.sin(x * 0.37 + base + 10 * rnd)).astype(np.float32)

    return delta


def test_three_rounds_with_four_devices_match_the_fedavg_oracle(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    bundle_id, initial = bundle_info(gateway_bundle)
    size = initial.shape[0]
    samples = {"dev-1": 5, "dev-2": 10, "dev-3": 15, "dev-4": 30}
    metrics = {"dev-1": 0.2, "dev-2": 0.4, "dev-3": 0.6, "dev-4": 0.8}
    state = tmp_path / "state"
    agg = AggregatorProcess(
        tmp_path,
        aggregator_args(
            gateway_bundle, mosquitto.port, state, rounds=3, k=4, m=3,
            over_select=1.0, codec="topk:0.25+int8", round_timeout=30, start_timeout=20,
        ),
    )  # fmt: skip
    # Devices come after the gateway subscribed (it publishes version 0 right after), so their
    # hellos register them; devices that were there first are covered by the engine tests.
    limits = Limits.for_vector_size(size)
    watcher = Listener(mosquitto.port, [Topics("default").global_model])
    assert watcher.wait_for(lambda m: len(decode_all(m, limits, GlobalModel)) >= 1, 20), agg.stderr
    watcher.close()
    devices = [
        SimDevice(
            mosquitto.port, cid, bundle_id, size, known_delta(cid),  # type: ignore[arg-type]
            num_samples=n, metrics={"eval_accuracy": metrics[cid], "eval_samples": 100.0},
        ).start()
        for cid, n in samples.items()
    ]  # fmt: skip
    try:
        assert agg.wait(60) == 0, agg.stderr
    finally:
        for d in devices:
            d.stop()
    store = GlobalStore(state / "models")
    expected = initial
    for rnd in (1, 2, 3):
        sent = [(d.sent[rnd][1], float(d.num_samples)) for d in devices]
        expected = fedavg(expected, sent)
        np.testing.assert_allclose(store.load_weights(rnd)[1], expected, rtol=1e-6, atol=1e-7)
    lines = read_metrics(state)
    assert [(m["round"], m["version"], m["participants"], m["selected"]) for m in lines] == [
        (1, 1, 4, 4),
        (2, 2, 4, 4),
        (3, 3, 4, 4),
    ]
    assert all(abs(m["metrics"]["eval_accuracy"] - 0.5) < 1e-9 for m in lines)
    printed = [line for line in agg.stdout.splitlines() if line.startswith("round ")]
    assert len(printed) == 3
    assert "4/4 participants" in printed[0]
    assert "eval_accuracy 0.5000" in printed[0]
    # Every device got exactly one positive Ack per round.
    for d in devices:
        assert sorted((a.round, a.accepted) for a in d.acks) == [(1, True), (2, True), (3, True)]
    # The retained global model is the final version, for devices that come late.
    late = Listener(mosquitto.port, [Topics("default").global_model, Topics("default").task])
    # Retained messages on two topics arrive in no fixed order: wait for both.
    assert late.wait_for(
        lambda m: len(decode_all(m, limits, GlobalModel)) == 1 and any(t.endswith("/task") for t, *_ in m), 10
    )
    model = decode_all(late.snapshot(), limits, GlobalModel)[0]
    assert model.model_version == 3
    tasks = decode_all([m for m in late.snapshot() if m[0].endswith("/task")], limits, RoundTask)
    assert tasks
    assert tasks[-1].round == 3
    late.close()


def test_aggregator_runs_without_torch_transformers_onnxruntime(
    gateway_bundle: Path, mosquitto, tmp_path: Path
) -> None:
    """The gateway CLI never imports the workstation or device stacks."""
    argv = [
        "aggregator", "--bundle", str(gateway_bundle), "--broker", f"mqtt://127.0.0.1:{mosquitto.port}",
        "--state-dir", str(tmp_path / "s"), "--rounds", "1", "--clients-per-round", "1",
        "--start-timeout", "0.5", "--metrics-port", "0",
    ]  # fmt: skip
    code = (
        "import sys, threading\n"
        "from fmfl.cli import build_parser\n"
        "from fmfl.aggregator.cli.aggregator import settings_from_args\n"
        "from fmfl.aggregator.app.server import serve\n"
        f"args = build_parser().parse_args({argv!r})\n"
        "try:\n"
        "    serve(settings_from_args(args), threading.Event())\n"
        "except Exception as exc:\n"
        "    print('ended:', type(exc).__name__, exc)\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'onnxruntime', 'onnx') if m in sys.modules)\n"
        "print('HEAVY', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "ended: StartTimeout" in out.stdout, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr

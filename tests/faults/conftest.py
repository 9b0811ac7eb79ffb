"""Fixtures of the fault-injection suite (issue 8): a gateway bundle, a persistent broker, the trial ledger.

Real processes only: ``fmfl aggregator`` and ``fmfl client`` subprocesses killed with SIGKILL at named
failpoints (``fmfl.failpoints``), a real Mosquitto with persistence on, loopback only. The ledger of
trials is written to ``faults-summary.json`` in the session's temporary folder and shown at the end of
the terminal report ("N trials, K kills, 0 lost").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.faults import Ledger  # this folder and tests/aggregator are on pytest's pythonpath

_LEDGER = Ledger()
_SUMMARY: list[Path] = []


@pytest.fixture(scope="session")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    yield _LEDGER
    path = tmp_path_factory.getbasetemp() / "faults-summary.json"
    _LEDGER.write(path)
    _SUMMARY.append(path)


@pytest.fixture(scope="session")
def fault_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A verifiable gateway bundle (manifest + initial weights, 300 floats): all the gateway reads."""
    from support.gateway_harness import make_synthetic_bundle

    return make_synthetic_bundle(tmp_path_factory.mktemp("fault-bundle") / "bundle", 300, seed=8)


@pytest.fixture
def broker() -> Iterator[Any]:
    """A real Mosquitto with persistence on (sessions and queued QoS 1 messages survive a restart).

    Its folder is a fresh one directly under the system temporary folder: run as root, Mosquitto drops
    to the ``mosquitto`` user, which cannot enter pytest's 0700 ``tmp_path`` parents, and would then
    fail to write its persistence file ("Permission denied" in its log) and start empty after a restart.
    """
    import shutil
    import tempfile

    from fmfl.mqtt.mosquitto import Mosquitto, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run scripts/install.sh (apt-get install mosquitto)")
    workdir = Path(tempfile.mkdtemp(prefix="fmfl-faults-broker-"))
    b = Mosquitto(workdir, persistence=True).start()
    try:
        yield b
        log = (workdir / "mosquitto.log").read_text(errors="replace")
        assert "Error" not in log, f"the broker logged errors:\n{log[-2000:]}"
    finally:
        b.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _LEDGER.trials:
        return
    s = _LEDGER.summary()
    terminalreporter.write_sep("-", "fault injection")
    terminalreporter.write_line(
        f"{s['trials']} trials, {s['kills']} kills/restarts, {s['acked']} acknowledged updates: "
        f"{s['lost']} lost, {s['doubled']} counted twice "
        f"({s['dropped_with_failed_round']} dropped with a round that failed its quorum, by design)"
    )
    terminalreporter.write_line(
        f"{s['versions_checked']} global versions equal bit for bit to a FedAvg fed the same updates in the "
        f"same order; {s['versions_equal_to_order_free_mean']} also to the order-free float64 mean"
    )
    for name, row in sorted(s["scenarios"].items()):
        terminalreporter.write_line(
            f"  {name}: {row['trials']} trials, {row['kills']} kills, {row['acked']} acked, "
            f"{row['lost']} lost, {row['doubled']} doubled"
        )
    if _SUMMARY:
        terminalreporter.write_line(f"  written to {_SUMMARY[0]}")


@pytest.fixture(scope="session")
def device_bundle(tiny_vit_bundle: Path) -> Path:
    """A real bundle for ``fmfl client``: the session's tiny ViT (tests/conftest.py)."""
    return tiny_vit_bundle


@pytest.fixture(scope="session")
def device_shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three disjoint shards of 160 real Fashion-MNIST training images, one per device."""
    import numpy as np

    from fmfl.datasets.fashion_mnist import load_fashion_mnist
    from fmfl.edge_client.data import write_npz

    data = load_fashion_mnist("train")
    root = tmp_path_factory.mktemp("shards")
    paths = []
    for i in range(3):
        part = slice(160 * i, 160 * (i + 1))
        paths.append(write_npz(root / f"shard{i}.npz", data.images[part], data.labels[part].astype(np.int64)))
    return paths

"""A mixed federation: the real gateway (`fmfl aggregator`), a Python device (`fmfl client`) and a browser device
(the page in headless Chromium, through web/tools/web_clients.mjs) on one Mosquitto. Every round closes with both
updates accepted and counted, and the browser trains round 2 from the global model the gateway made. The page
after the last round, at a phone's viewport (390 x 844), is docs/img/web-device.png."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.web

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "web-device.png"


def test_python_and_browser_devices_share_every_round(
    tiny_vit_bundle: Path, fmnist_shard: Path, ws_broker: Any, make_site: Any, web_clients: Any,
    processes: Any, browser: Any, tmp_path: Path,
) -> None:
    # Prepare: the gateway waits for two devices (K = 2, quorum 2), one of each kind
    federation = browser.federation
    state = tmp_path / "gateway"
    gateway = processes(tmp_path, "aggregator", [
        "aggregator", "--bundle", str(tiny_vit_bundle), "--broker", ws_broker.url, "--federation", federation,
        "--state-dir", str(state), "--rounds", "2", "--clients-per-round", "2", "--min-clients", "2",
        "--over-select", "1.0", "--round-timeout", "180", "--start-timeout", "180", "--selection-window", "0",
    ])
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)

    # Execute
    python_device = processes(tmp_path, "client", [
        "client", "--bundle", str(tiny_vit_bundle), "--data", str(fmnist_shard), "--state-dir", str(tmp_path / "py"),
        "--broker", ws_broker.url, "--client-id", "py-1", "--federation", federation, "--rounds", "2",
    ])
    pages = web_clients(site.url, [{"id": "web-1", "shard": str(fmnist_shard)}], screenshots=tmp_path)
    assert gateway.wait(240) == 0, gateway.output
    assert python_device.wait(60) == 0, python_device.output
    pages.wait_for(lambda ev: sum(e["type"] == "acked" for e in ev) >= 2, 30, "the browser's second Ack")
    assert pages.stop() == 0
    assert any(e["type"] == "exit" for e in pages.snapshot())

    # Assert: both rounds counted both devices
    lines = browser.read_metrics(state)
    assert [(m["round"], m["participants"]) for m in lines] == [(1, 2), (2, 2)], lines
    events = pages.snapshot()
    kinds = [e["type"] for e in events]
    errors = [e.get("message") for e in events if e["type"] == "error"]
    assert "joined" in kinds, errors
    assert not errors, errors
    acks = [e for e in events if e["type"] == "acked"]
    assert [(a["round"], a["accepted"]) for a in acks] == [(1, True), (2, True)], acks
    trained = [e for e in events if e["type"] == "trained"]
    assert [t["round"] for t in trained] == [1, 2]
    # The web device trains on 80 % of the 600 images, as the Python device does (its eval split is 20 %).
    assert all(t["num_samples"] == 480 for t in trained)
    for t in trained:
        assert np.isfinite(t["metrics"]["train_loss"])
        assert 0 <= t["metrics"]["eval_accuracy"] <= 1
    # Round 2 trained from the version round 1 made (the browser reassembled and decoded the global model).
    globals_seen = [e["model_version"] for e in events if e["type"] == "global"]
    first_round_version = lines[0]["version"]
    assert first_round_version in globals_seen, events
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "web-1.png", SCREENSHOT)

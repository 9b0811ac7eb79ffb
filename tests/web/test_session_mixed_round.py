"""A mixed federation: the real gateway (`fmfl aggregator`), a Python device (`fmfl client`) and two browser devices
(pages in one headless Chromium, through web/tools/web_clients.mjs) on one Mosquitto. Every round closes with all
three updates accepted and counted, and the pages train round 2 from the global model the gateway made. The page
after the last round, at a phone's viewport (390 x 844), is docs/img/web-device.png."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.web

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "web-device.png"


def split_shard(shard: Path, folder: Path, parts: int) -> list[Path]:
    """The shard's images cut into ``parts`` consecutive .npz shards (the browser devices' own data)."""
    with np.load(shard) as data:
        images, labels = data["images"], data["labels"]
    step = len(labels) // parts
    out = []
    for i in range(parts):
        path = folder / f"web-{i + 1}.npz"
        np.savez(path, images=images[i * step:(i + 1) * step], labels=labels[i * step:(i + 1) * step])
        out.append(path)
    return out


def test_python_and_browser_devices_share_every_round(
    tiny_vit_bundle: Path, fmnist_shard: Path, ws_broker: Any, make_site: Any, web_clients: Any,
    processes: Any, browser: Any, tmp_path: Path,
) -> None:
    # Prepare: the gateway waits for three devices (K = 3, quorum 3): one Python device, two pages in one
    # Chromium (each in its own browser context: its own IndexedDB), each page with its own 300 images
    federation = browser.federation
    state = tmp_path / "gateway"
    gateway = processes(tmp_path, "aggregator", [
        "aggregator", "--bundle", str(tiny_vit_bundle), "--broker", ws_broker.url, "--federation", federation,
        "--state-dir", str(state), "--rounds", "2", "--clients-per-round", "3", "--min-clients", "3",
        "--over-select", "1.0", "--round-timeout", "180", "--start-timeout", "180", "--selection-window", "0",
    ])
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)
    shards = split_shard(fmnist_shard, tmp_path, 2)

    # Execute
    python_device = processes(tmp_path, "client", [
        "client", "--bundle", str(tiny_vit_bundle), "--data", str(fmnist_shard), "--state-dir", str(tmp_path / "py"),
        "--broker", ws_broker.url, "--client-id", "py-1", "--federation", federation, "--rounds", "2",
    ])
    pages = web_clients(site.url, [{"id": f"web-{i + 1}", "shard": str(s)} for i, s in enumerate(shards)],
                        screenshots=tmp_path)
    assert gateway.wait(300) == 0, gateway.output
    assert python_device.wait(60) == 0, python_device.output
    pages.wait_for(lambda ev: sum(e["type"] == "acked" for e in ev) >= 4, 30, "both pages' second Acks")
    assert pages.stop() == 0
    assert any(e["type"] == "exit" for e in pages.snapshot())

    # Assert: both rounds counted all three devices
    lines = browser.read_metrics(state)
    assert [(m["round"], m["participants"]) for m in lines] == [(1, 3), (2, 3)], lines
    events = pages.snapshot()
    errors = [e.get("message") for e in events if e["type"] == "error"]
    assert not errors, errors
    first_round_version = lines[0]["version"]
    for client in ("web-1", "web-2"):
        mine = [e for e in events if e.get("client") == client]
        assert "joined" in [e["type"] for e in mine], mine
        acks = [e for e in mine if e["type"] == "acked"]
        assert [(a["round"], a["accepted"]) for a in acks] == [(1, True), (2, True)], acks
        trained = [e for e in mine if e["type"] == "trained"]
        assert [t["round"] for t in trained] == [1, 2]
        # 80 % of the page's 300 images train, as on the Python device (its eval split is 20 %).
        assert all(t["num_samples"] == 240 for t in trained), trained
        for t in trained:
            assert np.isfinite(t["metrics"]["train_loss"])
            assert 0 <= t["metrics"]["eval_accuracy"] <= 1
        # Round 2 trained from the version round 1 made (as a downlink delta or dense, reassembled in the page).
        assert first_round_version in [e["model_version"] for e in mine if e["type"] == "global"], mine
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "web-1.png", SCREENSHOT)

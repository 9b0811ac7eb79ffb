"""The reference device (`fmfl client`, a real process) passes every check of the conformance kit,
over a real Mosquitto on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.conformance_kit import KitThread

from fmfl.conformance.scenarios import REFUSALS, KitConfig
from fmfl.mqtt import parse_broker_url

pytestmark = pytest.mark.slow  # about 40 s: a dozen quiet windows and resend intervals


def test_the_python_device_passes_every_check(
    mosquitto: Any, tiny_vit_bundle: Path, fmnist_shard: Path, tmp_path: Path
) -> None:
    # Prepare: the kit waits for the device's hello; the device resends unacknowledged updates after 2 s
    cfg = KitConfig.from_bundle(tiny_vit_bundle, broker=parse_broker_url(mosquitto.url), client_id="dev-1",
                                federation="conf", timeout=60, resend_after=2, quiet=2)
    kit = KitThread(cfg).start()
    cmd = [sys.executable, "-m", "fmfl.cli", "-v", "client", "--bundle", str(tiny_vit_bundle), "--data",
           str(fmnist_shard), "--state-dir", str(tmp_path / "state"), "--broker", mosquitto.url,
           "--client-id", "dev-1", "--federation", "conf", "--resend-after", "2"]
    device = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})

    # Execute
    start = time.monotonic()
    try:
        report = kit.join(timeout=400)
    finally:
        device.terminate()
        out, _ = device.communicate(timeout=30)

    # Assert
    assert report.passed, kit.text + "\n---- device log\n" + out
    names = {c.name for c in report.checks}
    assert {f"ack.refused.{r}" for r in REFUSALS} <= names
    assert {"join.hello", "join.subscribed_first", "model.chunked", "resend.no_ack", "run.follows_new",
            "run.old_task_ignored", "task.duplicate", "update.well_formed", "downlink.delta",
            "downlink.bad_delta_refused"} <= names
    # The reference device takes deltas (the kit passes a device without them too, saying which it saw).
    assert "saw:      version" in kit.text
    assert "trained from the delta" in kit.text
    print(kit.text)
    print(f"{len(names)} checks passed in {time.monotonic() - start:.0f} s")

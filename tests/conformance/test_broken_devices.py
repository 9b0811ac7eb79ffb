"""A device that breaks one rule fails the check that names that rule, and the command exits 1.

The devices are tiny in-test implementations over a real Mosquitto (tests/support/tiny_device.py);
the one that keeps every rule passes every check, so the kit is not tuned to the reference device alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.conformance_kit import KitThread
from support.tiny_device import TinyDevice

from fmfl.conformance.scenarios import REFUSALS, KitConfig
from fmfl.mqtt import parse_broker_url


def _config(mosquitto: Any, bundle: Path) -> KitConfig:
    return KitConfig.from_bundle(bundle, broker=parse_broker_url(mosquitto.url), client_id="tiny", federation="conf",
                                 timeout=20, resend_after=1, quiet=1)


def test_a_device_that_never_says_hello_fails_join_and_the_command_exits_1(
    mosquitto: Any, tiny_vit_bundle: Path
) -> None:
    # Prepare: a device that connects and subscribes but never publishes its hello
    cfg = _config(mosquitto, tiny_vit_bundle)
    device = TinyDevice(mosquitto.url, "tiny", "conf", cfg.bundle_id, cfg.weights.size, says_hello=False).start()

    # Execute: the real command line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fmfl.cli", "conformance", "--broker", mosquitto.url, "--client-id", "tiny",
             "--federation", "conf", "--bundle", str(tiny_vit_bundle), "--timeout", "4"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        device.stop()

    # Assert: one FAIL, saying what was expected and what was seen, and nothing run after it
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL join.hello\n     expected: a ClientHello on fmfl/conf/hello/tiny" in done.stdout
    assert "saw:      nothing within 4 s" in done.stdout
    assert "PASS" not in done.stdout
    assert "0 of 1 checks passed; failed: join.hello" in done.stdout


# About 12 s each (every scenario runs); the rule-abiding twin is the slow suite's.
@pytest.mark.parametrize("drops_refused", [pytest.param(True, marks=pytest.mark.slow), False],
                         ids=["keeps-every-rule", "resends-refused-updates"])
def test_a_device_that_resends_refused_updates_fails_exactly_the_refusal_checks(
    mosquitto: Any, tiny_vit_bundle: Path, drops_refused: bool
) -> None:
    cfg = _config(mosquitto, tiny_vit_bundle)
    kit = KitThread(cfg).start()
    # Its outbox still holds an update of an earlier session: the kit refuses it and judges nothing by it.
    device = TinyDevice(mosquitto.url, "tiny", "conf", cfg.bundle_id, cfg.weights.size,
                        drops_refused=drops_refused).leave_in_outbox(round_=3).start()
    try:
        report = kit.join(timeout=300)
    finally:
        device.stop()

    failed = {c.name for c in report.failed}
    assert failed == (set() if drops_refused else {f"ack.refused.{r}" for r in REFUSALS}), kit.text
    assert "refused 1 update(s) left from an earlier session" in kit.text
    if not drops_refused:
        assert "saw:      sent again" in kit.text

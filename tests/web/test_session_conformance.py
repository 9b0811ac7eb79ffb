"""The browser device against `fmfl conformance` (docs/protocol.md, section 9a): the kit plays the gateway over
the real broker and drives the page through join, a chunked global model, selection, every negative Ack, a
withheld Ack, a new run beside the old one, a duplicate task and the downlink checks (the page takes the delta);
every check must pass.

The page resends an unacknowledged update after ``resend_after_s`` (config.json; 30 s by default, as the Python
device's --resend-after): the site here sets 3 s so the kit's resend check is short.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.web, pytest.mark.slow]

RESEND_AFTER_S = 3


def test_the_web_device_passes_every_conformance_check(
    tiny_vit_bundle: Path, fmnist_shard: Path, ws_broker: Any, make_site: Any, web_clients: Any, processes: Any,
    tmp_path: Path,
) -> None:
    # Prepare: the kit first (it clears the federation and waits for a fresh hello), then the page
    federation = "conformance"
    site = make_site(tiny_vit_bundle, ws_broker.ws_url, federation=federation)
    config = json.loads((site.root / "config.json").read_text())
    (site.root / "config.json").write_text(json.dumps({**config, "resend_after_s": RESEND_AFTER_S}))
    kit = processes(tmp_path, "conformance", [
        "conformance", "--broker", ws_broker.url, "--client-id", "web-1", "--bundle", str(tiny_vit_bundle),
        "--federation", federation, "--resend-after", str(RESEND_AFTER_S), "--timeout", "60",
    ])

    deadline = time.monotonic() + 60
    while "start (or restart) the device now" not in kit.output and time.monotonic() < deadline:
        time.sleep(0.1)

    # Execute
    pages = web_clients(site.url, [{"id": "web-1", "shard": str(fmnist_shard)}])
    code = kit.wait(540)

    # Assert
    output = kit.output
    assert code == 0, output
    summary = re.search(r"(\d+) of (\d+) checks passed", output)
    assert summary is not None, output
    assert summary.group(1) == summary.group(2), output
    assert int(summary.group(2)) >= 29
    assert "FAIL" not in output
    # The page takes downlink deltas (section 2b): it trained from the delta, before the dense copy came.
    assert "trained from the delta" in output, output
    assert not [e for e in pages.snapshot() if e["type"] == "error"], pages.snapshot()

"""``benchmarks.aggregator_round`` end to end on a small fleet (real Mosquitto, real gateway, raw-socket devices).

The 10,000-device figure in docs/benchmarks.md comes from this command; a refactor of the gateway it drives must
not break it silently. ``--no-write`` leaves docs/ alone.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration  # starts Mosquitto and sender processes; 2 s here
def test_a_round_of_20_devices_ends_with_the_summary_line_and_writes_nothing() -> None:
    docs = [ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "bench_aggregator_round.json"]
    before = [p.read_bytes() for p in docs]
    result = subprocess.run([sys.executable, "-m", "benchmarks.aggregator_round", "--devices", "20", "--repeats", "1",
                             "--no-write"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"devices=20 ingest_s=(\d+\.\d{3}) round_s=(\d+\.\d{3}) acked=(\d+)", last)
    assert match, last
    assert int(match.group(3)) == 20  # every device got its Ack
    assert 0 < float(match.group(1)) <= float(match.group(2))
    assert [p.read_bytes() for p in docs] == before

"""The accuracy-against-epsilon benchmark in ``--quick`` mode, writing to a temporary file and cache (not docs/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the benchmark exports the demo bundle on first use (workstation extra)")

ROOT = Path(__file__).resolve().parents[2]


def _table(text: str) -> list[list[str]]:
    section = text.split("## Accuracy against epsilon")[1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and "clients, q =" in line]


def _eps(row: list[str]) -> float:
    return float(row[4].replace(",", ""))


@pytest.mark.slow
def test_quick_privacy_sweep_writes_its_section_elsewhere(tmp_path: Path) -> None:
    # Prepare
    doc = ROOT / "docs" / "privacy.md"
    before = doc.read_text() if doc.exists() else None
    output = tmp_path / "privacy.md"
    output.write_text("# Differential privacy\n\n## Other\n\nkept\n")

    # Execute
    result = subprocess.run([sys.executable, "-m", "benchmarks.privacy", "--quick", "--output", str(output),
                             "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)

    # Assert
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = output.read_text()
    assert "## Other\n\nkept" in text
    rows = _table(text)
    by = {(r[0], r[1], r[2]): r for r in rows}
    assert len(rows) == 1 + 5 + 5 + 1 + 5, rows
    for regime in ("10 clients, q = 1", "100 clients, q = 0.1"):
        assert by[(regime, "none (FedAvg)", "-")][4] == "∞ (no DP)"
        central = [_eps(by[(regime, "central DP-FedAvg", z)]) for z in ("0.3", "0.5", "1", "2", "4")]
        assert central == sorted(central, reverse=True), central  # more noise, less epsilon
        clips = {r[3] for r in rows if r[0] == regime and r[2] != "-"}
        assert len(clips) == 1
        assert float(clips.pop()) > 0
    # Sampling amplifies: at q = 0.1 the same z costs far less than with every client every round.
    for z in ("1", "4"):
        full = _eps(by[("10 clients, q = 1", "central DP-FedAvg", z)])
        sampled = _eps(by[("100 clients, q = 0.1", "central DP-FedAvg", z)])
        local = _eps(by[("10 clients, q = 1", "local DP (+ FedAvg)", z)])
        assert sampled < full < local  # local DP: sensitivity 2C, no averaging before release
    assert all(r[7] == "2" for r in rows if r[0].startswith("10 clients")), rows
    assert (tmp_path / "privacy_epsilon.png").stat().st_size > 1000
    assert (doc.read_text() if doc.exists() else None) == before

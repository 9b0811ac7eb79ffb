"""The attack benchmark in ``--quick`` mode, writing to a temporary file and cache (never the docs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the benchmark exports the demo bundle on first use (workstation extra)")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_attack_matrix_writes_its_section_elsewhere(tmp_path: Path) -> None:
    # Prepare
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_text() if doc.exists() else None
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n## Other\n\nkept\n")

    # Execute
    result = subprocess.run([sys.executable, "-m", "benchmarks.attacks", "--quick", "--output", str(output),
                             "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)

    # Assert
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = output.read_text()
    assert "## Other\n\nkept" in text
    assert "## Robustness under attack" in text
    assert "### Final test accuracy (%) after 2 rounds" in text
    for attack in ("| none |", "| sign flip |", "| scaling x10 |", "| ALIE |", "| label flip |"):
        assert attack in text
    # Scaled updates are 10x the honest norm, the bound 3x the median: the bound rejects both attackers twice.
    assert "| scaling x10 |" in text
    assert text.split("| scaling x10 |")[1].split("\n")[0].endswith("| 4 / 0 |")
    assert "Goal (both gaps within 3 points on every attack): **" in text
    assert (tmp_path / "bench_attacks.png").stat().st_size > 1000
    assert (doc.read_text() if doc.exists() else None) == before

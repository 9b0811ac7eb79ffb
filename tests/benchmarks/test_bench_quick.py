"""The fmfl-vs-Flower benchmark harness in ``--quick`` mode, writing to a temporary file (never the docs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_writes_its_section_elsewhere(tmp_path: Path) -> None:
    # Prepare
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_text() if doc.exists() else None
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n## Other\n\nkept\n")

    # Execute
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output),
                             "--work", str(tmp_path / "work")], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)

    # Assert
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = output.read_text()
    assert "## Other\n\nkept" in text
    assert "## fmfl vs Flower" in text
    assert "### Side by side" in text
    # the quick plan scores every run's global after rounds 1 and 2; fmfl's cells are percentages
    assert "### Accuracy after the same rounds" in text
    assert re.search(r"^\| 2 \| \d+\.\d\d% \|", text, re.MULTILINE), text
    # Flower either ran or says why not; it never silently disappears.
    assert ("not run" in text) or ("Flower aggregate()" in text)
    assert (doc.read_text() if doc.exists() else None) == before

"""The kit runs where a gateway runs: it never imports torch, transformers, onnx or onnxruntime."""

from __future__ import annotations

import subprocess
import sys


def test_the_kit_imports_no_training_stack() -> None:
    code = (
        "import sys\nimport fmfl.cli, fmfl.conformance.scenarios, fmfl.conformance.cli\n"
        "fmfl.cli.build_parser()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

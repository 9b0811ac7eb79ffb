"""This checkout's fmfl as a wheel, for tests that install it into another Python or userland."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_fmfl_wheel(work: Path) -> Path:
    """Build the (pure Python) fmfl wheel under ``work`` and return its path.

    Built from a copy of ``src``, ``pyproject.toml`` and ``README.md``: setuptools writes ``build/`` and
    ``*.egg-info`` next to the sources, which must not land in the checkout.
    """
    src = work / "src-copy"
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    out = work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = out.glob("fmfl-*-py3-none-any.whl")
    return wheel

"""Real data from Debian packages (Fashion-MNIST, WordNet): skipped where absent, a failure under CI.

A developer's machine may lack a package and still run the rest; a CI machine that lacks one has lost
coverage, which must show as a failure, as a missing Mosquitto already does (``CI`` set and not 0/false).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_debian_data(path: Path, package: str) -> None:
    """Return if ``path`` exists; else skip the test, or fail it under CI."""
    if path.exists():
        return
    message = f"Debian package {package} is not installed ({path} is missing): apt-get install {package}"
    if in_ci():
        pytest.fail(f"{message}; CI is set, so missing data fails instead of skipping", pytrace=False)
    pytest.skip(message)

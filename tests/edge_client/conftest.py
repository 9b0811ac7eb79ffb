"""The device tests' bundle: the session's tiny ViT (tests/conftest.py), used torch-free."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def vit_bundle(tiny_vit_bundle: Path) -> Path:
    """Exported once per session on the workstation side (torch), used torch-free by the client tests."""
    return tiny_vit_bundle

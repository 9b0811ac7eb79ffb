"""The arm64 userland (scripts/arm64_rootfs.sh), fmfl installed in it from this checkout, and a small shard.

The userland with fmfl's device dependencies is built once and cached outside the clone; CI builds it
before pytest runs (scripts/test.sh). When it is missing this fixture builds it (about 5 minutes, hence the
arm64 tests' long timeout). A userland that cannot be had (not root, or qemu-user-static/proot/mmdebstrap/
arch-test not installed) fails the test with what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.arm64 import REPO, VENV, arm64_run  # this folder is on pytest's pythonpath
from support.real_data import export_tiny_vit, write_fmnist_shard
from support.wheel import build_fmfl_wheel

BUILD_SCRIPT = REPO / "scripts" / "arm64_rootfs.sh"
RUN_TOOLS = ("proot", "qemu-aarch64-static")
BUILD_TOOLS = ("mmdebstrap", "arch-test", "update-binfmts", *RUN_TOOLS)
INSTALL_HINT = (
    "as root: apt-get install qemu-user-static binfmt-support mmdebstrap arch-test proot "
    "(scripts/install.sh does it), then scripts/arm64_rootfs.sh builds the userland"
)


def _unavailable(why: str) -> None:
    """Fail, never skip: a missing userland must not pass for a working arm64 device (deselect with
    ``-m "not arm64"`` on a machine that cannot build one)."""
    pytest.fail(f"arm64 userland unavailable: {why}")


@pytest.fixture(scope="session")
def arm64_userland(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cached arm64 userland's root folder, built first if it is missing."""
    missing = [t for t in RUN_TOOLS if shutil.which(t) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed; {INSTALL_HINT}")
    probe = subprocess.run([str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False)
    rootfs = Path(probe.stdout.strip())
    if probe.returncode == 3:  # not built for the current inputs: build it here (idempotent, locked)
        missing = [t for t in BUILD_TOOLS if shutil.which(t) is None]
        if missing or os.geteuid() != 0:
            _unavailable(f"{rootfs} is not built and {', '.join(missing) or 'root'} is missing; {INSTALL_HINT}")
        log = tmp_path_factory.mktemp("arm64-build") / "arm64_rootfs.log"
        with log.open("w") as f:
            build = subprocess.run([str(BUILD_SCRIPT), "--ensure"], stdout=subprocess.PIPE, stderr=f, text=True,
                                   check=False)
        if build.returncode != 0:
            pytest.fail(f"scripts/arm64_rootfs.sh failed ({build.returncode}); the end of its log {log}:\n"
                        + log.read_text()[-4000:])
        rootfs = Path(build.stdout.strip().splitlines()[-1])
    elif probe.returncode != 0:
        pytest.fail(f"scripts/arm64_rootfs.sh --print failed ({probe.returncode}):\n{probe.stderr}")
    assert (rootfs / VENV.lstrip("/") / "bin" / "python").exists(), f"{rootfs} has no {VENV}"
    return rootfs


@pytest.fixture(scope="session")
def arm64_fmfl(arm64_userland: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The userland with this checkout's fmfl installed in its venv: the wheel built here (pure Python),
    installed there with pip (--no-deps: the dependencies are the cached ones). Returns the userland."""
    wheel = build_fmfl_wheel(tmp_path_factory.mktemp("fmfl-wheel"))
    install = subprocess.run(
        arm64_run(arm64_userland, [f"{VENV}/bin/python", "-m", "pip", "install", "--no-deps", "--force-reinstall",
                                   "--no-index", "--no-compile", "-q", str(wheel)],
                  binds=[wheel.parent], env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"}),
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return arm64_userland


@pytest.fixture(scope="session")
def sgd_vit_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle as ``tiny_vit_bundle`` (random-init tiny ViT at 32 px, last block + head trainable, the
    10 Fashion-MNIST classes) but trained with plain SGD.

    Why not AdamW: some gradients are exactly zero in exact arithmetic (an attention key bias shifts every
    logit of a row alike, so softmax ignores it) and only rounding noise in float; AdamW divides each gradient
    by its own magnitude, which turns that noise into steps of the full learning rate with a random sign, so
    two correct float implementations (x86-64 and aarch64 kernels) end up a learning rate apart there. SGD
    keeps the update proportional to the gradient: the native and emulated rounds then agree to float noise.
    """
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return export_tiny_vit(tmp_path_factory.mktemp("vit-sgd"), optimizer="sgd", lr=0.05)


@pytest.fixture(scope="session")
def small_fmnist_shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 real Fashion-MNIST training images as the device's .npz (emulated inference is slow: keep it small)."""
    return write_fmnist_shard(tmp_path_factory.mktemp("arm64-data") / "shard.npz", 64)

"""Running commands in the arm64 userland (scripts/arm64_run.sh: proot + qemu-aarch64-static)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_SCRIPT = REPO / "scripts" / "arm64_run.sh"
VENV = "/opt/fmfl-venv"  # the venv scripts/arm64_rootfs.sh makes in the userland


def arm64_run(
    rootfs: Path, command: list[str], *, binds: Iterable[Path] = (), env: dict[str, str] | None = None
) -> list[str]:
    """The argv that runs ``command`` in the userland, each of ``binds`` visible at its host path."""
    argv = [str(RUN_SCRIPT), str(rootfs)]
    for b in binds:
        argv += ["-b", str(b)]
    for k, v in (env or {}).items():
        argv += ["-e", f"{k}={v}"]
    return [*argv, "--", *command]

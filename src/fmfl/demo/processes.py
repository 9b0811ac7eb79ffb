"""Child processes of the demo: the aggregator and the clients, each logging to its own file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    exit_reported: bool = field(default=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def spawn(name: str, args: list[str], log: Path, threads: int | None = 1) -> Child:
    """``python -m fmfl.cli ARGS`` in its own process group, stdout and stderr to ``log``."""
    env = {"PYTHONUNBUFFERED": "1"}
    if threads:
        # One ORT/BLAS thread per client: ten clients on two cores must not oversubscribe them tenfold.
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return spawn_command(name, [sys.executable, "-m", "fmfl.cli", *args], log, env)


def spawn_command(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
    """``argv`` in its own process group (so stopping it stops its children too), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                               start_new_session=True)
    handle.close()
    return Child(name, process, log)


def stop_all(children: list[Child], grace: float = 10.0) -> None:
    """SIGTERM every child, wait up to ``grace`` seconds, then SIGKILL what is left."""
    for child in children:
        if child.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            child.process.wait(remaining)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()

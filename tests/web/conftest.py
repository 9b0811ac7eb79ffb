"""The browser tests' harness: real headless Chromium (Debian's, driven by puppeteer-core), a real Mosquitto
with a WebSockets listener on loopback, the real site `fmfl web` builds, and real gateway and device processes.

A browser test fails (never skips) when chromium, node or the npm packages are missing: CI installs them with
``scripts/install.sh web``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fmfl.mqtt.mosquitto import Mosquitto, mosquitto_binary
from fmfl.web.server import SiteServer
from fmfl.web.site import SiteConfig, build_site

REPO = Path(__file__).resolve().parents[2]
# This folder's helper modules (training_node, protocol_node) are importable by name: pyproject.toml lists it
# in pytest's pythonpath.
TOOLS = REPO / "web" / "tools"
CHROMIUM = Path("/usr/bin/chromium")
FEDERATION = "webtest"


def require_browser() -> None:
    """Fail with the fix when a part of the browser stack is missing (CI must not skip these tests)."""
    problems = []
    if not CHROMIUM.is_file():
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    if shutil.which("node") is None:
        problems.append("node is missing (apt-get install nodejs)")
    if not (REPO / "web" / "node_modules" / "puppeteer-core").is_dir():
        problems.append("web/node_modules lacks puppeteer-core (scripts/install.sh web)")
    if mosquitto_binary() is None:
        problems.append("mosquitto is missing (apt-get install mosquitto)")
    if problems:
        pytest.fail("the browser tests need: " + "; ".join(problems))


@pytest.fixture
def ws_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto with a plain listener (gateway, Python devices) and a WebSockets one (pages)."""
    require_browser()
    broker = Mosquitto(tmp_path / "mosquitto", websockets=True).start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Site:
    root: Path
    url: str


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """``make_site(bundle, broker_ws_url)``: the site `fmfl web` writes, served over HTTP on loopback."""
    servers: list[SiteServer] = []

    def make(bundle: Path, broker: str, federation: str = FEDERATION, name: str = "site") -> Site:
        root = build_site(bundle, tmp_path / name, SiteConfig(broker=broker, federation=federation))
        server = SiteServer(root).start()
        servers.append(server)
        return Site(root, server.url)

    yield make
    for server in servers:
        server.stop()


def run_page(url: str, *, wait: str | None = None, upload: dict[str, list[Path]] | None = None,
             select: dict[str, str] | None = None,
             result: str | None = None, screenshot: Path | None = None, init: str | None = None,
             reload_when: str | None = None, wait_after_reload: str | None = None, viewport: str = "390x844",
             profile: Path | None = None, timeout_s: float = 120) -> dict[str, Any]:
    """One page through web/tools/run_page.mjs; returns its JSON report (``ok``, ``result``, ``console``...)."""
    require_browser()
    args = ["node", str(TOOLS / "run_page.mjs"), "--url", url, "--viewport", viewport,
            "--timeout", str(int(timeout_s * 1000))]
    for selector, value in (select or {}).items():
        args += ["--select", f"{selector}={value}"]
    for selector, files in (upload or {}).items():
        args += ["--upload", f"{selector}={','.join(str(f) for f in files)}"]
    for flag, value in (("--wait", wait), ("--result", result), ("--init", init), ("--reload-when", reload_when),
                        ("--wait-after-reload", wait_after_reload)):
        if value is not None:
            args += [flag, value]
    if screenshot is not None:
        args += ["--screenshot", str(screenshot)]
    if profile is not None:  # the same browser profile again: its IndexedDB (outbox, identity) survives
        args += ["--profile", str(profile)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s + 60, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(f"run_page.mjs printed no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def page_events(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The session events a page logged (``fmfl-event {json}`` console lines), in order."""
    prefix = "fmfl-event "
    return [json.loads(line[len(prefix):]) for line in report["console"] if line.startswith(prefix)]


@dataclass
class WebClients:
    """web/tools/web_clients.mjs: N pages in one Chromium; its JSON event lines are collected as they come."""

    proc: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reader: threading.Thread | None = None

    def start_reading(self) -> WebClients:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self.lock:
                    self.events.append(json.loads(line))

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if not predicate(self.snapshot()):
            raise AssertionError(f"timed out waiting for {what}; events: {self.snapshot()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(10)  # the last lines ("exit") are read before the caller looks
        return self.proc.returncode


@pytest.fixture
def web_clients(tmp_path: Path) -> Iterator[Callable[..., WebClients]]:
    """``web_clients(site_url, [{"id": ..., "shard": ...}, ...], screenshots=DIR)``: starts the driver (each page
    saved as DIR/<id>.png when it stops); stopped after the test."""
    started: list[WebClients] = []

    def start(site_url: str, clients: list[dict[str, Any]], screenshots: Path | None = None) -> WebClients:
        require_browser()
        spec = tmp_path / f"clients-{len(started)}.json"
        spec.write_text(json.dumps(clients))
        extra = ["--screenshots", str(screenshots)] if screenshots is not None else []
        proc = subprocess.Popen(["node", str(TOOLS / "web_clients.mjs"), "--site", site_url, "--clients", str(spec),
                                 *extra],
                                stdout=subprocess.PIPE, stderr=(tmp_path / f"web_clients-{len(started)}.err").open("w"),
                                text=True, cwd=REPO)
        clients_proc = WebClients(proc).start_reading()
        started.append(clients_proc)
        return clients_proc

    yield start
    for c in started:
        c.stop()


class Process:
    """``python -m fmfl.cli ...`` with its output in a file; killed at the end of the test if still running."""

    def __init__(self, workdir: Path, name: str, args: list[str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "fmfl.cli", *args], stdout=self.log_path.open("wb"),
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=REPO)

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.log_path.stem} did not exit in {timeout} s:\n{self.output}") from None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process must be able to die
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def processes() -> Iterator[Callable[[Path, str, list[str]], Process]]:
    """``processes(workdir, name, args)`` starts an fmfl command; all are killed after the test."""
    started: list[Process] = []

    def start(workdir: Path, name: str, args: list[str]) -> Process:
        p = Process(workdir, name, args)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def read_metrics(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Browser:
    """The module-level helpers as a fixture (test modules cannot import conftest under importlib mode)."""

    run_page = staticmethod(run_page)
    page_events = staticmethod(page_events)
    read_metrics = staticmethod(read_metrics)
    federation = FEDERATION


@pytest.fixture
def browser() -> Browser:
    require_browser()
    return Browser()

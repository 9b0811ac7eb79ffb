"""Run a private Mosquitto on a free loopback port (tests and ``fmfl demo``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from fmfl.errors import FmflError


class MosquittoUnavailable(FmflError):
    """mosquitto is not installed or would not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


class Mosquitto:
    """``with Mosquitto(workdir) as broker: broker.url`` - a broker bound to 127.0.0.1 only.

    With ``config_file`` (e.g. the one ``fmfl provision`` writes) the broker runs that configuration instead
    of the built-in anonymous one; ``port`` must then be the port it listens on, and ``tls`` whether that
    listener speaks TLS (``url`` becomes ``mqtts://``). ``websockets=True`` adds a second, MQTT over WebSockets
    listener (the web device's transport) on ``ws_port``, also bound to 127.0.0.1: Mosquitto 2.0.11's libwebsockets
    listener was seen listening on every interface despite a bind address (tests/web check what this one does).
    """

    def __init__(self, workdir: Path, port: int | None = None, persistence: bool = False,
                 extra_config: str = "", *, config_file: Path | None = None, tls: bool = False,
                 websockets: bool = False, ws_port: int | None = None,
                 ws_password_file: Path | None = None) -> None:
        if config_file is not None and port is None:
            raise ValueError("Mosquitto(config_file=...) needs the port that configuration listens on")
        self.workdir = workdir
        self.port = port or free_port()
        self.persistence = persistence
        self.extra_config = extra_config
        self.config_file = config_file
        self.tls = tls
        # With config_file, ws_port names that configuration's WebSockets listener (to wait for it).
        self.ws_port = ws_port or (free_port() if websockets else None)
        #: a Mosquitto password file the WebSockets listener requires (it opens on every interface, see above)
        self.ws_password_file = ws_password_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port this broker listens on (the WebSockets listener opens after the plain one)."""
        return (self.port,) if self.ws_port is None else (self.port, self.ws_port)

    @property
    def ws_url(self) -> str:
        """The WebSockets listener's URL, as a browser on this machine reaches it."""
        if self.ws_port is None:
            raise ValueError("this broker has no WebSockets listener (Mosquitto(websockets=True))")
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> Mosquitto:
        binary = mosquitto_binary()
        if binary is None:
            raise MosquittoUnavailable("mosquitto is not installed (apt-get install mosquitto)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and _has_user("mosquitto"):
            # Mosquitto drops privileges to its own user; let it write its persistence file here.
            shutil.chown(self.workdir, user="mosquitto")
        conf = self.config_file or self.workdir / "mosquitto.conf"
        websockets_listener = self.ws_port is not None and self.config_file is None
        ws_auth = websockets_listener and self.ws_password_file is not None
        lines = [
            *(["per_listener_settings true"] if ws_auth else []),
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            # With persistence, sessions and queued QoS 1 messages are also saved every second, not
            # only at a clean exit: a broker that is killed loses at most the last second.
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            *([f"listener {self.ws_port} 127.0.0.1", "protocol websockets"] if websockets_listener else []),
            *(["allow_anonymous false", f"password_file {self.ws_password_file}"] if ws_auth else []),
            self.extra_config,
        ]
        if self.config_file is None:
            conf.write_text("\n".join(lines) + "\n")
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MosquittoUnavailable(
                    f"mosquitto exited with {self.process.returncode}; see {self.workdir / 'mosquitto.log'}"
                )
            if all(_listening(port) for port in self.ports):
                return self
            time.sleep(0.05)
        self.stop()
        raise MosquittoUnavailable(f"mosquitto did not listen on port(s) {self.ports} within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> Mosquitto:
        """Stop (SIGTERM: with persistence the broker saves its sessions) and start again on the same port."""
        self.stop()
        return self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True

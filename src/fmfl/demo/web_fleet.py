"""``fmfl demo --web-clients N``: N browser devices beside the Python ones, in one headless Chromium.

Each web device is the real web device (the page ``fmfl web`` serves, in its own browser context): it reads
its shard through the page's data picker, verifies the bundle, trains with onnxruntime-web and speaks
protocol 1.2 over the broker's WebSockets listener. That listener opens on every interface in Mosquitto
2.0.11 (docs/web.md), so it takes only the web devices' passwords, generated per run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fmfl.demo.processes import Child, spawn_command
from fmfl.errors import FmflError
from fmfl.provision.passwords import hashed_lines, new_password
from fmfl.web.server import SiteServer
from fmfl.web.site import NPM_PROJECT, SiteConfig, build_site, node_modules

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = NPM_PROJECT / "tools" / "web_clients.mjs"


def web_client_ids(count: int) -> list[str]:
    return [f"w{i:02d}" for i in range(count)]


@dataclass(frozen=True)
class WebCredentials:
    """Per-run passwords of the web devices, and the Mosquitto password file that holds their hashes."""

    passwords: dict[str, str]
    password_file: Path

    @classmethod
    def create(cls, ids: list[str]) -> WebCredentials:
        # Outside the run folder: Mosquitto reads the file as its own user, who may not enter the run's parents.
        root = Path(tempfile.mkdtemp(prefix="fmfl-demo-web-"))
        root.chmod(0o755)
        passwords = {cid: new_password() for cid in ids}
        path = root / "passwd"
        path.write_text("".join(f"{line}\n" for line in hashed_lines(passwords, use_mosquitto_passwd=False)))
        path.chmod(0o644)  # hashes only
        return cls(passwords, path)

    def remove(self) -> None:
        shutil.rmtree(self.password_file.parent, ignore_errors=True)


def check_web_prerequisites() -> None:
    """Refuse ``--web-clients`` early, before anything is exported, when the browser or node is missing."""
    missing = [what for what, ok in (("node", shutil.which("node") is not None),
                                     (str(CHROMIUM), CHROMIUM.exists()),
                                     (str(DRIVER), DRIVER.is_file())) if not ok]
    if missing:
        raise FmflError(f"--web-clients needs {', '.join(missing)}: run `scripts/install.sh web` "
                        "(Debian chromium, node and the web device's npm packages)")
    node_modules()  # its own clear error when the npm packages are missing


@dataclass
class WebFleet:
    """The site server and the browser process of a demo's web devices."""

    server: SiteServer
    browser: Child
    credentials: WebCredentials

    def stop(self) -> None:
        self.server.stop()
        self.credentials.remove()


def start_web_fleet(run_dir: Path, bundle: Path, ws_url: str, federation: str, shards: list[Path],
                    credentials: WebCredentials) -> WebFleet:
    """Serve the site for ``bundle`` and open one page per shard (ids and passwords from ``credentials``)."""
    ids = list(credentials.passwords)
    if len(ids) != len(shards):
        raise ValueError(f"{len(ids)} web device ids for {len(shards)} shards")
    site = build_site(bundle, run_dir / "web" / "site", SiteConfig(broker=ws_url, federation=federation))
    server = SiteServer(site).start()
    clients = run_dir / "web" / "clients.json"
    fd = os.open(clients, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the passwords
    with os.fdopen(fd, "w") as f:
        json.dump([{"id": cid, "shard": str(shard.resolve()), "password": credentials.passwords[cid]}
                   for cid, shard in zip(ids, shards, strict=True)], f)
    browser = spawn_command("web", ["node", str(DRIVER), "--site", server.url, "--clients", str(clients),
                                    "--chromium", str(CHROMIUM)], run_dir / "logs" / "web.log")
    return WebFleet(server, browser, credentials)

"""What goes wrong on a phone, shown on the page, with nothing uploaded and nothing lost from the outbox.

One browser profile plays one phone across several visits (its IndexedDB survives between them): it trains a
round for a test-side gateway that never acknowledges, so the update waits in the outbox; then the broker
refuses its password, then the broker is down, then the picked data is unusable. Each visit must show its
clear message, send nothing, and leave the outbox entry byte for byte as it was; the last visit, with the
right password and the broker back, resends that entry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmfl.bundle import verify_bundle
from fmfl.mqtt import make_client, parse_broker_url
from fmfl.mqtt.mosquitto import Mosquitto
from fmfl.protocol import GlobalModel, Limits, Reassembler, RoundTask, Topics, UpdateEncoder, split_message

pytestmark = pytest.mark.web

PASSWORD = "right-password-7f3a"
GATEWAY = ("gateway", "gateway-password-91c2")
STATUS = "(async () => ({status: window.fmfl.status, outbox: window.fmfl.outbox ? await window.fmfl.outbox() : null, " \
         "banner: document.getElementById('message').textContent, events: window.fmfl.events}))()"


class SilentGateway:
    """Publishes a global model and a task selecting ``web-1``, records updates, never acknowledges."""

    def __init__(self, url: str, federation: str, size: int) -> None:
        opts = parse_broker_url(url)
        self.topics = Topics(federation)
        self.limits = Limits.for_vector_size(size)
        self.reassembler = Reassembler(self.limits.max_message_bytes)
        self.updates: list[bytes] = []
        self.lock = threading.Lock()
        self.client = make_client("test-gateway", opts, clean_session=True)
        self.client.username_pw_set(*GATEWAY)
        self.client.on_message = self._on_message
        self.client.connect(opts.host, opts.port)
        self.client.subscribe(self.topics.all_updates, qos=1)
        self.client.loop_start()
        self.size = size

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        message = self.reassembler.add(bytes(msg.payload), source=msg.topic)
        if message is not None:
            with self.lock:
                self.updates.append(message)

    def publish_round(self, bundle_id: str, weights: np.ndarray) -> None:
        run = int(time.time() * 1000)
        model = GlobalModel(bundle_id, 1, None, UpdateEncoder("dense", self.size).encode(weights), run=run)
        for i, chunk in enumerate(split_message(model.to_bytes(), 4096, run=run)):
            self.client.publish(self.topics.global_model_chunk(i), chunk, qos=1, retain=True).wait_for_publish(5)
        task = RoundTask(federation=self.topics.federation, bundle_id=bundle_id, round=1, model_version=1,
                         selected=("web-1",), batch_size=32, lr=0.01, codec="topk:0.01+int8+ef",
                         deadline=time.time() + 600, seed=1, local_epochs=1, run=run)
        for chunk in split_message(task.to_bytes(), 4096, run=run):
            self.client.publish(self.topics.task, chunk, qos=1, retain=True).wait_for_publish(5)

    def snapshot(self) -> list[bytes]:
        with self.lock:
            return list(self.updates)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def locked_broker(tmp_path: Path, browser: Any) -> Any:
    """Mosquitto with a WebSockets listener that admits only the password file's users (mosquitto_passwd, the
    broker's own hashing). The file lives in a folder the broker's own user can reach (pytest's are 0700)."""
    auth = Path(tempfile.mkdtemp(prefix="fmfl-web-auth-"))
    auth.chmod(0o755)
    path = auth / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "web-1", PASSWORD], check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(path), *GATEWAY], check=True, capture_output=True)
    if os.geteuid() == 0:
        shutil.chown(path, user="mosquitto")
    broker = Mosquitto(tmp_path / "mosquitto", websockets=True,
                       extra_config=f"allow_anonymous false\npassword_file {path}")
    try:
        yield broker.start()
    finally:
        broker.stop()
        shutil.rmtree(auth)


def test_refused_password_unreachable_broker_and_bad_data_leave_the_outbox_as_it_was(
    tiny_vit_bundle: Path, fmnist_shard: Path, locked_broker: Mosquitto, make_site: Any, browser: Any,
    tmp_path: Path,
) -> None:
    # Prepare: one round that gets an update but no Ack, so the phone's outbox holds one entry
    manifest = verify_bundle(tiny_vit_bundle)
    size = manifest.num_trainable
    gateway = SilentGateway(locked_broker.url, browser.federation, size)
    site = make_site(tiny_vit_bundle, locked_broker.ws_url)
    profile = tmp_path / "phone"
    page = f"{site.url}index.html"
    try:
        gateway.publish_round(manifest.bundle_id, np.load(tiny_vit_bundle / "initial_weights.npy"))
        first = browser.run_page(f"{page}#client=web-1&password={PASSWORD}", profile=profile,
                                 upload={"#data-files": [fmnist_shard]},
                                 wait="window.fmfl && window.fmfl.events.some(e => e.type === 'sent')", result=STATUS)
        assert first["ok"], first
        outbox = first["result"]["outbox"]
        assert len(outbox) == 1, outbox
        assert outbox[0]["round"] == 1, outbox
        deadline = time.monotonic() + 10
        while not gateway.snapshot() and time.monotonic() < deadline:
            time.sleep(0.05)
        sent_before = len(gateway.snapshot())
        assert sent_before >= 1
        label = manifest.labels[0]

        # Execute + Assert 1: a wrong password is refused by the broker (CONNACK 5, not authorized)
        refused = browser.run_page(f"{page}#client=web-1&password=wrong", profile=profile,
                                   wait="window.fmfl && window.fmfl.status.errorKind === 'refused'", result=STATUS,
                                   timeout_s=60)
        assert refused["ok"], refused
        r = refused["result"]
        assert "refused" in r["banner"], r
        assert "CONNACK code" in r["banner"], r
        assert "1 update(s) stay" in r["banner"], r
        assert r["outbox"] == outbox
        assert not r["status"]["joined"]

        # 2: the broker is down
        locked_broker.stop()
        down = browser.run_page(f"{page}#client=web-1&password={PASSWORD}", profile=profile,
                                wait="window.fmfl && window.fmfl.status.errorKind === 'unreachable'", result=STATUS,
                                timeout_s=60)
        assert down["ok"], down
        d = down["result"]
        assert "cannot reach the broker" in d["banner"], d
        assert d["outbox"] == outbox, d

        # 3: picked data that is not an image, and labels the manifest does not have
        not_image = tmp_path / "notes.png"
        not_image.write_bytes(b"these are my notes, not a picture")
        bad = browser.run_page(page, profile=profile, select={"#data-label": label},
                               upload={"#data-files": [not_image]},
                               wait="window.fmfl && window.fmfl.status.errorKinds.includes('data')",
                               result=STATUS, timeout_s=60)
        assert bad["ok"], bad
        b = bad["result"]
        data_errors = [e["message"] for e in b["events"] if e["type"] == "error" and e["kind"] == "data"]
        assert data_errors, b
        assert "notes.png" in data_errors[0], b
        assert b["outbox"] == outbox, b
        labels = tmp_path / "labels.npz"
        with np.load(fmnist_shard) as shard:
            np.savez(labels, images=shard["images"][:20], labels=np.arange(20) % 13)  # 10 labels in the manifest
        wrong = browser.run_page(page, profile=profile, upload={"#data-files": [labels]},
                                 wait="window.fmfl && window.fmfl.status.errorKinds.includes('labels')", result=STATUS,
                                 timeout_s=60)
        assert wrong["ok"], wrong
        label_errors = [e["message"] for e in wrong["result"]["events"] if e.get("kind") == "labels"]
        assert label_errors, wrong["result"]["events"]
        assert "cannot be used" in label_errors[0], wrong["result"]["events"]
        assert wrong["result"]["outbox"] == outbox, wrong["result"]
        assert len(gateway.snapshot()) == sent_before, "something was uploaded while failing"

        # The broker back, the right password: the same entry goes out again, unchanged
        locked_broker.start()
        gateway.close()
        gateway = SilentGateway(locked_broker.url, browser.federation, size)
        back = browser.run_page(f"{page}#client=web-1&password={PASSWORD}", profile=profile,
                                wait="window.fmfl && window.fmfl.events.some(e => e.type === 'resent')",
                                result=STATUS, timeout_s=60)
        assert back["ok"], back
        deadline = time.monotonic() + 10
        while not gateway.snapshot() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gateway.snapshot(), "the outbox entry was not resent"
        assert back["result"]["outbox"] == outbox
    finally:
        gateway.close()


def test_a_broker_restart_mid_session_reconnects_rejoins_and_resends_the_outbox(
    tiny_vit_bundle: Path, fmnist_shard: Path, locked_broker: Mosquitto, make_site: Any, browser: Any,
) -> None:
    # Prepare: the page's update waits for an Ack that never comes
    manifest = verify_bundle(tiny_vit_bundle)
    gateway = SilentGateway(locked_broker.url, browser.federation, manifest.num_trainable)
    gateway.publish_round(manifest.bundle_id, np.load(tiny_vit_bundle / "initial_weights.npy"))
    site = make_site(tiny_vit_bundle, locked_broker.ws_url)
    restarted = threading.Event()

    def restart_once_the_update_is_out() -> None:
        deadline = time.monotonic() + 120
        while not gateway.snapshot() and time.monotonic() < deadline:
            time.sleep(0.05)
        locked_broker.stop()  # the page loses its connection with the update unacknowledged
        time.sleep(1)
        locked_broker.start()  # same ports; without persistence it forgot every session and retained message
        restarted.set()

    # Execute: the page stays open across the restart
    restarter = threading.Thread(target=restart_once_the_update_is_out, daemon=True)
    restarter.start()
    try:
        report = browser.run_page(
            f"{site.url}index.html#client=web-1&password={PASSWORD}", upload={"#data-files": [fmnist_shard]},
            wait="window.fmfl && window.fmfl.events.filter(e => e.type === 'connected').length >= 2 "
                 "&& window.fmfl.events.some(e => e.type === 'resent')",
            result=STATUS, timeout_s=120)
    finally:
        restarter.join(10)
        gateway.close()

    # Assert: offline once, then connected again (joined again: online status and hello), the same entry resent
    assert report["ok"], report
    assert restarted.is_set()
    events = report["result"]["events"]
    kinds = [e["type"] for e in events]
    assert kinds.count("offline") == 1, kinds
    assert kinds.count("joined") == 2, kinds
    resent = [e for e in events if e["type"] == "resent"]
    sent = [e for e in events if e["type"] == "sent"]
    assert [(r["update_id"], r["why"]) for r in resent] == [(sent[0]["update_id"], "connect")], events
    assert report["result"]["outbox"][0]["update_id"] == sent[0]["update_id"]

"""A page reloaded mid-round: the update is in the IndexedDB outbox, the gateway has not acknowledged it (it is
paused with SIGSTOP before the update reaches it), the page reloads and sends the same bytes again, and the
gateway counts the update once.

The round needs two updates (K = 2) but may close on one at its deadline (quorum 1): a second count of the
same update would close it at once with two participants, so "one participant, closed at the deadline, one
accepted row in the journal" shows the resend was counted once.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fmfl.aggregator.durable.journal import RoundJournal
from fmfl.bundle import verify_bundle
from fmfl.protocol import Limits, Reassembler, Topics

pytestmark = pytest.mark.web

ROUND_TIMEOUT_S = 45  # the page trains in a few seconds once the task is out; the rest is the deadline wait


class Watcher:
    """A paho subscriber beside the gateway: the round task and every update message the browser publishes."""

    def __init__(self, url: str, federation: str, client_id: str, size: int) -> None:
        from fmfl.mqtt import make_client, parse_broker_url

        opts = parse_broker_url(url)
        self.topics = Topics(federation)
        self.limits = Limits.for_vector_size(size)
        self.reassembler = Reassembler(self.limits.max_message_bytes)
        self.updates: list[bytes] = []
        self.task_seen = threading.Event()
        self.lock = threading.Lock()
        self.client = make_client("test-watcher", opts, clean_session=True)
        self.client.on_message = self._on_message
        self.client.connect(opts.host, opts.port)
        self.client.subscribe([(self.topics.update(client_id), 1), (self.topics.task, 1)])
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if not msg.payload:
            return  # the gateway clearing an earlier run's retained task
        message = self.reassembler.add(bytes(msg.payload), source=msg.topic)
        if message is None:
            return
        if msg.topic == self.topics.task:
            self.task_seen.set()
            return
        with self.lock:
            self.updates.append(message)

    def snapshot(self) -> list[bytes]:
        with self.lock:
            return list(self.updates)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def hold_the_ack(gateway: Any, watcher: Watcher, paused: threading.Event) -> None:
    """SIGSTOP the gateway as soon as its round task is out, SIGCONT once the browser sent its update twice.

    Paused before the page even trains, the gateway cannot acknowledge the first copy; Mosquitto queues both
    copies for it (its connection stays up within the keep-alive), so it receives them when it resumes and
    must count the update id once.
    """
    if not watcher.task_seen.wait(200):
        return
    gateway.signal(signal.SIGSTOP)
    paused.set()
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and len(watcher.snapshot()) < 2:
        time.sleep(0.02)
    gateway.signal(signal.SIGCONT)


def test_reload_before_the_ack_resends_the_outbox_entry_and_it_counts_once(
    tiny_vit_bundle: Path, fmnist_shard: Path, ws_broker: Any, make_site: Any, processes: Any, browser: Any,
    tmp_path: Path,
) -> None:
    # Prepare: a gateway that closes a round on one update, and a watcher of the task and the browser's updates
    federation = browser.federation
    size = verify_bundle(tiny_vit_bundle).num_trainable
    watcher = Watcher(ws_broker.url, federation, "web-1", size)
    state = tmp_path / "gateway"
    gateway = processes(tmp_path, "aggregator", [
        "aggregator", "--bundle", str(tiny_vit_bundle), "--broker", ws_broker.url, "--federation", federation,
        "--state-dir", str(state), "--rounds", "1", "--clients-per-round", "2", "--min-clients", "1",
        "--over-select", "1.0", "--round-timeout", str(ROUND_TIMEOUT_S), "--start-timeout", "180",
        "--selection-window", "0",
    ])
    site = make_site(tiny_vit_bundle, ws_broker.ws_url)
    paused = threading.Event()
    holder = threading.Thread(target=hold_the_ack, args=(gateway, watcher, paused), daemon=True)
    holder.start()

    # Execute: the page trains and sends; it reloads (the gateway paused: no Ack yet) and must resend
    try:
        report = browser.run_page(
            f"{site.url}index.html#client=web-1", upload={"#data-files": [fmnist_shard]},
            reload_when="window.fmfl && window.fmfl.events.some(e => e.type === 'sent')",
            wait_after_reload="window.fmfl && window.fmfl.status.acked >= 1",
            result="(async () => ({status: window.fmfl.status, outbox: await window.fmfl.outbox(), "
                   "events: window.fmfl.events}))()",
            timeout_s=ROUND_TIMEOUT_S + 180,
        )
    finally:
        holder.join(5)
        gateway.signal(signal.SIGCONT)
        watcher.close()
    assert report["ok"], f"{report['error']}\n" + "\n".join(report["console"][-30:])
    assert gateway.wait(ROUND_TIMEOUT_S + 30) == 0, gateway.output

    # Assert: the gateway was paused before the first copy, and the copy after the reload is the same bytes
    assert paused.is_set()
    sent = watcher.snapshot()
    assert len(sent) >= 2, f"{len(sent)} update messages, first two equal: {sent[:2]}"
    assert sent[0] == sent[1], f"{len(sent)} update messages, first two equal: {sent[:2]}"
    after = report["result"]
    resent = [e for e in after["events"] if e["type"] == "resent"]
    assert resent, after["events"]
    assert resent[0]["why"] == "connect", after["events"]
    # ... the gateway counted the update once, acknowledged it, and the outbox is empty
    lines = browser.read_metrics(state)
    assert [(m["round"], m["participants"], m["status"]) for m in lines] == [(1, 1, "ok")], lines
    journal = RoundJournal(state / "journal.sqlite")
    try:
        rows = journal.accepted(1)
    finally:
        journal.close()
    assert [r.client_id for r in rows] == ["web-1"], rows
    assert rows[0].update_id == resent[0]["update_id"], rows
    assert after["status"]["acked"] == 1, after
    assert after["outbox"] == [], after

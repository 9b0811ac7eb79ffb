"""The scenarios, in the order a device meets them (docs/protocol.md, "Conformance kit").

The kit is one gateway run (and, for the last scenario, a newer run beside the old one): it numbers its
rounds from the current Unix time and its versions after whatever the broker and the device's hello hold,
so a device that took part in earlier sessions still takes every task as new. Checks that something must
*not* happen (no update for a task that does not select the device, no resend after an Ack) are decided at
the end, over everything the device sent during the session, after waiting at least the device's resend
interval past the last Ack.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fmfl.aggregator.core.downlink import DownlinkCompressor
from fmfl.aggregator.core.outbound import (
    ack_packets,
    clear_stale_chunks,
    clear_task,
    global_delta_packets,
    global_model_packets,
    task_packets,
)
from fmfl.aggregator.durable.run_identity import read_prior_run
from fmfl.conformance.checks import Report
from fmfl.conformance.link import KitLink, Received
from fmfl.errors import FmflError
from fmfl.mqtt import MqttOptions
from fmfl.protocol import (
    DEFAULT_CODEC,
    DEFAULT_MAX_PACKET_BYTES,
    Ack,
    AckReason,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    Limits,
    ProtocolError,
    Reason,
    Reassembler,
    RoundTask,
    Topics,
    decode_update,
    parse_chunk,
)
from fmfl.protocol.chunking import CHUNK_OVERHEAD
from fmfl.protocol.downlink import weights_sha256

#: one round per negative Ack reason of docs/protocol.md section 8 (one per row of its table): each is final
R = AckReason
REFUSALS: tuple[AckReason, ...] = (
    R.CLIENT_MISMATCH, R.WRONG_RUN, R.WRONG_BUNDLE, R.NO_OPEN_ROUND, R.WRONG_ROUND, R.STALE_ROUND,
    R.WRONG_VERSION, R.NOT_SELECTED, R.TOO_STALE, R.DUPLICATE_CLIENT, R.NORM, R.BAD_METADATA, R.SIZE_MISMATCH,
    R.UNSIGNED,
)  # fmt: skip
OTHER_CLIENT = "conformance-other"  # selected beside (or instead of) the device under test
MODEL_CHUNKS = 4  # the first run's global model goes out in this many chunks, the new run's in 2
ACK_CROSSING_S = 0.5  # a resend sent before the device could have received the Ack is no fault
RETAINED_WAIT_S = 3.0


@dataclass(frozen=True)
class KitConfig:
    """What the kit needs: the broker, the device's id, the bundle's id and trainable weights, and times.

    ``resend_after`` is the device's own resend interval (the reference device's ``--resend-after``);
    ``quiet`` how long the kit watches for something that must not happen (at least twice the time the
    device took to train its first round).
    """

    broker: MqttOptions
    client_id: str
    bundle_id: str
    weights: np.ndarray
    federation: str = "default"
    timeout: float = 60.0
    resend_after: float = 30.0
    quiet: float = 3.0
    codec: str = str(DEFAULT_CODEC)

    @classmethod
    def from_bundle(cls, bundle: Path, **options: Any) -> KitConfig:
        """Bundle id and initial weights from a verified bundle (hashes checked; no ONNX file is read)."""
        from fmfl.bundle import verify_bundle

        manifest = verify_bundle(bundle)
        name = manifest.artifacts.get("initial_weights")
        size = manifest.num_trainable
        weights = np.zeros(size, np.float32)
        if name:
            weights = np.load(bundle / name, allow_pickle=False).astype(np.float32).ravel()
        if weights.size != size:
            raise FmflError(f"bundle {bundle}: initial weights hold {weights.size} floats, the manifest {size}")
        return cls(bundle_id=manifest.bundle_id, weights=weights, **options)


class Abort(Exception):
    """A check failed that every later scenario depends on (no hello, no update at all)."""


class Conformance:
    """Runs every scenario against the device ``cfg.client_id``; :meth:`run` returns the report."""

    def __init__(self, cfg: KitConfig, report: Report | None = None) -> None:
        self.cfg = cfg
        self.report = report or Report()
        self.topics = Topics(cfg.federation)
        self.limits = Limits.for_vector_size(int(cfg.weights.size))
        self.link = KitLink(cfg.broker, self.topics, cfg.client_id, cfg.bundle_id, self.limits)
        self.quiet = cfg.quiet
        self.run_id = 0
        self.first_round = self.round = 0
        self.version = 0
        self.tasks: dict[int, RoundTask] = {}  # every task the kit sent, by round
        self.acks: dict[str, tuple[Ack, float]] = {}  # update id -> the Ack sent and when
        self.must_not: list[tuple[str, int, str]] = []  # (check, round, expected): no update for that round
        self.duplicate_round = 0
        self.refused: dict[str, ClientUpdate | None] = {}  # reason -> the update refused with it
        self.leftovers: set[str] = set()  # ids of updates from an earlier session, resent on connect
        self.chunk_topics = 0
        self.delta_topics = 0

    # -- driving ------------------------------------------------------------------------------------
    def run(self) -> Report:
        prior = read_prior_run(self.cfg.broker, self.topics, self.limits)
        self.run_id = prior.new_run_id(time.time())
        self.first_round = max(prior.first_round, int(time.time()))
        self.round = self.first_round - 1
        self.version = prior.first_version
        self.chunk_topics = max(prior.chunk_topics, default=-1) + 1
        self.delta_topics = max(prior.delta_topics, default=-1) + 1
        self.link.start()
        # What earlier gateways left retained would be a second, competing run.
        self.link.publish(self._clear_retained())
        try:
            for scenario in (self._join, self._waits_for_model, self._not_selected, self._duplicate_task,
                             self._refusals, self._withheld_ack, self._new_run, self._downlink):
                scenario()
            self._final_checks()
        except Abort:
            self.report.note("stopped: the scenarios after this one need the check that failed")
        finally:
            self.link.publish(self._clear_retained())
            self.link.close()
        self.report.note(self.report.summary())
        return self.report

    def _clear_retained(self) -> list[Any]:
        return [clear_task(self.topics), *clear_stale_chunks(self.topics, 0, self.chunk_topics),
                *clear_stale_chunks(self.topics, 0, self.delta_topics, delta=True)]

    def _next_round(self) -> int:
        self.round += 1
        return self.round

    def _next_version(self) -> int:
        self.version += 1
        return self.version

    def _task(self, version: int, selected: tuple[str, ...] | None = None, run: int | None = None) -> RoundTask:
        task = RoundTask(
            federation=self.cfg.federation, bundle_id=self.cfg.bundle_id, round=self._next_round(),
            model_version=version, selected=selected or (self.cfg.client_id, OTHER_CLIENT), batch_size=32,
            lr=0.01, codec=self.cfg.codec, deadline=time.time() + 3600, seed=7, local_steps=1,
            run=run or self.run_id,
        )  # fmt: skip
        self.tasks[task.round] = task
        return task

    def _publish_task(self, task: RoundTask, retain: bool = True) -> float:
        packets = task_packets(self.topics, task, DEFAULT_MAX_PACKET_BYTES)
        self.link.publish([replace(p, retain=retain) for p in packets])
        return time.monotonic()

    def _publish_model(self, version: int, run: int, chunks: int, retain: bool = True) -> int:
        """The weights as ``version`` of ``run`` in ``chunks`` chunks, published last chunk first."""
        whole = global_model_packets(self.topics, self.cfg.bundle_id, version, self.cfg.weights,
                                     DEFAULT_MAX_PACKET_BYTES, run)
        total = sum(parse_chunk(p.payload).total for p in whole[:1])
        budget = max(CHUNK_OVERHEAD + 1, math.ceil(total / chunks) + CHUNK_OVERHEAD)
        packets = global_model_packets(self.topics, self.cfg.bundle_id, version, self.cfg.weights, budget, run)
        self.link.publish([replace(p, retain=retain) for p in reversed(packets)])
        self.chunk_topics = max(self.chunk_topics, len(packets))
        return len(packets)

    def _ack(self, update: ClientUpdate, accepted: bool = True, reason: str = "", detail: str = "") -> None:
        ack = Ack(self.cfg.client_id, update.round, update.update_id, accepted, reason, detail,
                  run=update.run or self.run_id)
        self.link.publish(ack_packets(self.topics, ack, DEFAULT_MAX_PACKET_BYTES))
        self.acks[update.update_id] = (ack, time.monotonic())

    def _pump(self, until: float) -> None:
        for got in self.link.pump(until):
            update = _update(got)
            if update is None:
                continue
            if update.update_id in self.acks:
                # A gateway answers a resend of an update it already answered with the same Ack.
                ack = self.acks[update.update_id][0]
                self.link.publish(ack_packets(self.topics, ack, DEFAULT_MAX_PACKET_BYTES))
            elif update.round < self.first_round:
                # Left in the device's outbox by an earlier session: refuse it, as a gateway would, and
                # judge nothing by it (the checks look at this session's rounds only).
                self.leftovers.add(update.update_id)
                self._ack(update, False, "stale_round", f"round {update.round} is from before this session")

    def _await(self, match: Callable[[Received], bool], timeout: float, since: int = 0) -> Received | None:
        """The first message from index ``since`` on that ``match`` accepts, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for got in self.link.received[since:]:
                if match(got):
                    return got
            since = len(self.link.received)
            if time.monotonic() >= deadline:
                return None
            self._pump(min(deadline, time.monotonic() + 0.2))

    def _await_update(self, round_: int, timeout: float | None = None, since: int = 0) -> Received | None:
        def match(got: Received) -> bool:
            update = _update(got)
            return update is not None and update.round == round_

        return self._await(match, self.cfg.timeout if timeout is None else timeout, since)

    def _updates(self, round_: int) -> list[ClientUpdate]:
        return [u for r in self.link.received if (u := _update(r)) is not None and u.round == round_]

    def _watch(self, seconds: float) -> None:
        self._pump(time.monotonic() + seconds)

    # -- scenarios ----------------------------------------------------------------------------------
    def _join(self) -> None:
        cid, t = self.cfg.client_id, self.topics
        self.report.note(f"waiting up to {self.cfg.timeout:.0f} s for {cid} to connect to {t.root}: "
                         "start (or restart) the device now")
        start = time.monotonic()
        got = self._await(lambda r: r.kind == "hello", self.cfg.timeout)
        hello = got.message if got is not None else None
        expected = f"a ClientHello on {t.hello(cid)} naming client_id {cid!r}"
        if got is None or not isinstance(hello, ClientHello) or hello.client_id != cid:
            saw = "nothing" if got is None else got.error or f"client_id {getattr(hello, 'client_id', None)!r}"
            self.report.add("join.hello", False, expected, f"{saw} within {self.cfg.timeout:.0f} s")
            raise Abort
        # Answer at once, the task not retained: only a device that subscribed before its hello gets it.
        self.version = max(self.version, (hello.model_version or 0) + 1)
        v1 = self.version
        chunks = self._publish_model(v1, self.run_id, MODEL_CHUNKS)
        task = self._task(v1)
        sent = self._publish_task(task, retain=False)
        self.report.add("join.hello", True, expected,
                        f"a hello after {got.at - start:.1f} s: bundle_id {hello.bundle_id}, model_version "
                        f"{hello.model_version}, capabilities {', '.join(sorted(hello.capabilities)) or 'none'}")
        bundle_ok = hello.bundle_id in (None, self.cfg.bundle_id)
        self.report.add("join.bundle", bundle_ok, f"bundle_id {self.cfg.bundle_id} (or null)",
                        f"bundle_id {hello.bundle_id}")
        self._check_retained()
        first = self._await_update(task.round)
        late = False
        if first is None:  # was the task missed, or is the device not training at all?
            self._publish_task(task, retain=True)
            first, late = self._await_update(task.round), True
        expected = (f"an update for round {task.round}, whose task went out (not retained) right after the "
                    "hello: a device subscribes before it says hello")
        if first is None:
            self.report.add("join.subscribed_first", False, expected,
                            "no update, not even after the task was published again, retained")
        else:
            self.report.add("join.subscribed_first", not late, expected,
                            "an update only once the task was published again, retained" if late else
                            f"an update {first.at - sent:.1f} s after the task")
        update = _update(first) if first is not None else None
        expected = (f"the update for round {task.round} trains from model_version {v1}, sent in {chunks} chunks "
                    "published last chunk first")
        if update is None:
            self.report.add("model.chunked", False, expected, "no update")
            raise Abort
        self.report.add("model.chunked", update.model_version == v1, expected,
                        f"model_version {update.model_version}")
        assert first is not None
        self.quiet = max(self.cfg.quiet, 2 * (first.at - sent) + 0.5)
        self._ack(update)

    def _check_retained(self) -> None:
        cid, t = self.cfg.client_id, self.topics
        held = self.link.read_retained([t.hello(cid), t.status(cid)], RETAINED_WAIT_S)
        raw = held.get(t.hello(cid))
        self.report.add("join.hello_retained", raw is not None, f"the hello retained on {t.hello(cid)}",
                        "retained" if raw is not None else "nothing retained (a gateway that starts later "
                        "never learns of the device)")
        status = held.get(t.status(cid))
        online, saw = False, "nothing retained"
        if status is not None:
            try:
                online = _status(status, self.limits).online
                saw = f"online={online}"
            except ProtocolError as exc:
                saw = str(exc)
        self.report.add("join.status_online", online, f"a retained ClientStatus online=true on {t.status(cid)}",
                        saw)

    def _waits_for_model(self) -> None:
        version = self._next_version()
        task = self._task(version)
        since = len(self.link.received)
        self._publish_task(task)
        self._watch(self.quiet)
        early = self._updates(task.round)
        chunks = self._publish_model(version, self.run_id, MODEL_CHUNKS)
        got = self._await_update(task.round, since=since) if not early else None
        update = _update(got) if got is not None else None
        expected = (f"no update for round {task.round} while model_version {version} is missing, then one that "
                    f"names version {version} once its {chunks} chunks arrive")
        if early:
            saw = f"an update naming version {early[0].model_version} before the model was sent"
        else:
            saw = "no update" if update is None else f"an update naming version {update.model_version}"
        self.report.add("model.waits_for_version",
                        not early and update is not None and update.model_version == version, expected, saw)
        for u in early or ([update] if update is not None else []):
            self._ack(u)

    def _not_selected(self) -> None:
        version = self.version
        skipped = self._task(version, selected=(OTHER_CLIENT,))
        self._publish_task(skipped)
        self.must_not.append(("selection.not_selected", skipped.round,
                              f"no update for round {skipped.round}, whose task selects only {OTHER_CLIENT!r}"))
        self._watch(self.quiet)
        task = self._task(version)
        self._publish_task(task)
        got = self._await_update(task.round)
        if got is not None and (update := _update(got)) is not None:
            self._ack(update)

    def _duplicate_task(self) -> None:
        task = self._task(self.version)
        self.duplicate_round = task.round
        self._publish_task(task)
        self._publish_task(task)
        self._publish_task(task, retain=False)
        got = self._await_update(task.round)
        if got is not None and (update := _update(got)) is not None:
            self._ack(update)
            self._publish_task(task)  # once more, after the Ack: the round is done
        self._watch(self.quiet)

    def _refusals(self) -> None:
        for reason in REFUSALS:
            task = self._task(self.version)
            self._publish_task(task)
            got = self._await_update(task.round)
            update = _update(got) if got is not None else None
            self.refused[reason] = update
            if update is not None:
                self._ack(update, False, reason, f"conformance kit: {reason} on purpose; drop this update")

    def _withheld_ack(self) -> None:
        task = self._task(self.version)
        self._publish_task(task)
        got = self._await_update(task.round)
        update = _update(got) if got is not None else None
        expected = (f"the update for round {task.round}, left without an Ack, sent again (same update_id and "
                    f"payload) within {self.cfg.resend_after:.0f} s (the device's resend interval) + "
                    f"{self.quiet:.0f} s")
        if got is None or update is None:
            self.report.add("resend.no_ack", False, expected, "no update")
            return
        index = self.link.received.index(got) + 1
        again = self._await(lambda r: (u := _update(r)) is not None and u.update_id == update.update_id,
                            self.cfg.resend_after + self.quiet, since=index)
        resent = _update(again) if again is not None else None
        if again is None or resent is None:
            self.report.add("resend.no_ack", False, expected, "not sent again")
        else:
            same = resent.payload == update.payload and resent.round == update.round
            self.report.add("resend.no_ack", same, expected,
                            f"sent again after {again.at - got.at:.1f} s"
                            + ("" if same else ", with another payload or round"))
        self._ack(update)

    def _new_run(self) -> None:
        old, new = self.run_id, max(int(time.time() * 1000), self.run_id + 1)
        self.run_id = new
        version = self._next_version()
        chunks = self._publish_model(version, new, 2)
        # A gateway starting a run clears the chunk topics its model does not overwrite (section 2a).
        self.link.publish(clear_stale_chunks(self.topics, chunks, self.chunk_topics))
        task = self._task(version, run=new)
        self._publish_task(task)
        got = self._await_update(task.round)
        update = _update(got) if got is not None else None
        self.report.add("run.follows_new", update is not None and (update.run, update.model_version) ==
                        (new, version),
                        f"an update for round {task.round} of the new run {new} (was {old}), naming that run "
                        f"and its model_version {version}",
                        "no update" if update is None else f"run {update.run}, model_version {update.model_version}")
        if update is not None:
            self._ack(update)
        # The old run's gateway is still alive: it sends a newer model version and a task for it.
        stale_version = self._next_version()
        self._publish_model(stale_version, old, 2, retain=False)
        stale = self._task(stale_version, run=old)
        self._publish_task(stale, retain=False)
        self.must_not.append(("run.old_task_ignored", stale.round,
                              f"no update for round {stale.round} of the old run {old}"))
        self._watch(self.quiet)
        task = self._task(version, run=new)
        self._publish_task(task)
        got = self._await_update(task.round)
        update = _update(got) if got is not None else None
        self.report.add("run.old_model_ignored", update is not None and update.model_version == version,
                        f"an update for round {task.round} of run {new} from its model_version {version}, "
                        f"after the old run {old} sent model_version {stale_version}",
                        "no update" if update is None else f"model_version {update.model_version}")
        if update is not None:
            self._ack(update)

    def _downlink(self) -> None:
        """Downlink deltas (docs/protocol.md 2b) are optional: a device that takes them trains from a good
        one and refuses one whose result does not hash to its ``weights_sha256``; a device that does not
        waits for the dense model. Both pass; the ``saw`` line says which kind the device is."""
        size, limit = int(self.cfg.weights.size), DEFAULT_MAX_PACKET_BYTES
        downlink = DownlinkCompressor("topk:0.1+int8", size)
        rng = np.random.default_rng(11)
        # The device holds the new run's model (the last task named it; the old run's later version it ignored).
        held, held_version = self.cfg.weights, self.tasks[self.round].model_version
        for check, corrupt in (("downlink.delta", False), ("downlink.bad_delta_refused", True)):
            version = self._next_version()
            moved = (held + rng.normal(scale=1e-3, size=size)).astype(np.float32)
            weights = downlink.rebase(held, held_version, moved)
            assert downlink.delta is not None
            delta = replace(downlink.delta, model_version=version)  # versions skip the old run's number
            if corrupt:  # the right payload, but the hash of the weights before it: applying it cannot match
                delta = replace(delta, weights_sha256=weights_sha256(held))
            packets = global_delta_packets(self.topics, self.cfg.bundle_id, delta, limit, self.run_id)
            self.delta_topics = max(self.delta_topics, len(packets))
            self.link.publish(packets)
            task = self._task(version)
            since = len(self.link.received)
            self._publish_task(task)
            early = self._await_update(task.round, timeout=self.quiet, since=since)
            dense = global_model_packets(self.topics, self.cfg.bundle_id, version, weights, limit, self.run_id,
                                         weights_sha256=weights_sha256(weights))
            self.link.publish(dense)
            self.chunk_topics = max(self.chunk_topics, len(dense))
            got = early or self._await_update(task.round, since=since)
            update = _update(got) if got is not None else None
            named = None if update is None else update.model_version
            if corrupt:
                passed = early is None and named == version
                expected = (f"no update for round {task.round} from a delta to version {version} whose result "
                            f"does not hash to its weights_sha256; one naming {version} once the dense model is "
                            "sent")
                saw = ("an update before the dense model was sent: the device trained from the refused delta"
                       if early is not None else "no update" if update is None else
                       f"after the dense model, an update naming version {named}")
            else:
                passed = named == version
                expected = (f"an update for round {task.round} naming version {version}: from the delta of "
                            f"version {held_version} -> {version}, or (deltas are optional) from the dense model "
                            f"sent {self.quiet:.0f} s later")
                saw = ("no update" if update is None else f"version {named}, "
                       + ("trained from the delta" if early is not None else "trained after the dense model "
                          "(this device does not take deltas)"))
            self.report.add(check, passed, expected, saw)
            if update is not None:
                self._ack(update)
            held, held_version = weights, version

    # -- the checks decided over the whole session ---------------------------------------------------
    def _final_checks(self) -> None:
        last_ack = max((at for _, at in self.acks.values()), default=time.monotonic())
        wait = last_ack + self.cfg.resend_after + self.quiet - time.monotonic()
        if wait > 0:
            self.report.note(f"watching {wait:.0f} s for resends of acknowledged updates")
            self._watch(wait)
        for name, round_, expected in self.must_not:
            sent = self._updates(round_)
            self.report.add(name, not sent, expected, f"{len(sent)} update(s)" if sent else "none")
        ids = {u.update_id for u in self._updates(self.duplicate_round)}
        self.report.add("task.duplicate", len(ids) == 1,
                        f"one update for round {self.duplicate_round}, whose task arrived four times",
                        f"{len(ids)} update id(s)")
        for reason, refused in self.refused.items():
            expected = f"the update refused as {reason!r} never sent again"
            if refused is None:
                self.report.add(f"ack.refused.{reason}", False, expected, "no update to refuse")
                continue
            resends = self._resends(refused.update_id)
            self.report.add(f"ack.refused.{reason}", not resends, expected,
                            f"sent again {len(resends)} time(s) after the Ack" if resends else "not sent again")
        if self.leftovers:
            self.report.note(f"refused {len(self.leftovers)} update(s) left from an earlier session (stale_round)")
        accepted = {i for i, (ack, _) in self.acks.items() if ack.accepted}
        resent = sorted({i for i in accepted if self._resends(i)})
        self.report.add("ack.accepted_final", not resent, "no accepted update sent again after its Ack",
                        f"resent: {', '.join(resent)}" if resent else f"none of {len(accepted)} resent")
        problems = [p for r in self.link.received if (p := self._problem(r))]
        self.report.add("update.well_formed", not problems,
                        "every message decodes; every update names its task's run, round and version, this "
                        "device and bundle, num_samples >= 1, and a payload of the bundle's size",
                        f"{len(problems)} problem(s): {'; '.join(problems[:3])}" if problems else
                        f"{sum(r.kind == 'update' for r in self.link.received)} updates, all well formed")

    def _resends(self, update_id: str) -> list[Received]:
        at = self.acks[update_id][1] + ACK_CROSSING_S
        return [r for r in self.link.received if r.at > at and (u := _update(r)) is not None
                and u.update_id == update_id]

    def _problem(self, got: Received) -> str:
        if got.error:
            return f"a {got.kind} message that does not decode ({got.error})"
        update = _update(got)
        if update is None or update.update_id in self.leftovers:
            return ""
        task = self.tasks.get(update.round)
        if task is None:
            return f"update {update.update_id} names round {update.round}, which no task had"
        want = (self.cfg.federation, self.cfg.bundle_id, self.cfg.client_id, task.run, task.model_version)
        have = (update.federation, update.bundle_id, update.client_id, update.run, update.model_version)
        if have != want:
            return f"update {update.update_id}: federation, bundle, client, run, version {have}, expected {want}"
        if update.num_samples < 1:
            return f"update {update.update_id}: num_samples {update.num_samples}"
        try:
            decode_update(update.payload, int(self.cfg.weights.size), self.limits)
        except ProtocolError as exc:
            return f"update {update.update_id}: payload {exc.reason} ({exc})"
        return ""


def _update(got: Received | None) -> ClientUpdate | None:
    return got.message if got is not None and isinstance(got.message, ClientUpdate) else None


def _status(payload: bytes, limits: Limits) -> ClientStatus:
    """A retained ClientStatus read on its own (one chunk, or a bare frame)."""
    data = Reassembler(limits.max_message_bytes).add(payload)
    if data is None:
        raise ProtocolError(Reason.TRUNCATED, "a retained status of several chunks")
    return ClientStatus.from_bytes(data, limits)

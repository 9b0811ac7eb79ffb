"""Signed client updates (issue 8): the gateway accepts only updates its registered, active devices signed,
and counts a replay at most once.

Engine level: ``RoundEngine`` driven directly (as tests/aggregator/core/test_engine_rejections.py does) with an
``UpdateVerifier`` on a devices.json written by the real ``fmfl provision``. Every refusal is checked for its
Ack reason AND for leaving the strategy's round state, the WAL and the journal byte for byte unchanged.
One end-to-end round runs real ``fmfl aggregator --device-registry`` and ``fmfl client --signing-key``
processes on a provisioned (TLS, passwords, ACL) Mosquitto.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.gateway_harness import SIZE, Harness, frames, make_synthetic_bundle, make_update  # tests/aggregator

from fmfl.protocol import ClientUpdate, Limits, ProtocolError, RoundTask
from fmfl.provision import Layout, ProvisionSpec, provision, revoke
from fmfl.trust import UpdateVerifier, load_signing_key, sign_update

GOLDEN_KEY_SEED = bytes(range(32))  # a fixed Ed25519 seed: signatures are deterministic (RFC 8032 5.1.6)
GOLDEN_SIGNATURE = "W8102BEHZZJKi8J0s8mNYNg6W3Z3XdCwOCLw2d19Sjeq0sr31dMcKXfN9mbBH8IbkS8sU0cFc/7PiXEwWtLYDg=="


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def fed(tmp_path: Path) -> Layout:
    """A provisioned federation 'default' (the Harness's): devices a, b, z and the gateway."""
    out = tmp_path / "fed"
    provision(ProvisionSpec(out=out, federation="default", device_ids=("a", "b", "z"), use_mosquitto_passwd=False))
    return Layout(out)


def key(fed: Layout, device: str) -> Ed25519PrivateKey:
    return load_signing_key(fed.device(device).signing_key)


def harness(tmp_path: Path, fed: Layout, *, resume: bool = False, rounds: int = 2) -> Harness:
    """Clients a and b selected (K = 2), every update checked against the federation's devices.json."""
    verifier = UpdateVerifier(fed.registry, federation="default")
    h = Harness(tmp_path, resume=resume, rounds=rounds, clients_per_round=2, min_clients=2, over_select=1.0,
                verifier=verifier)
    if not resume:
        h.register("a", "b")
        h.tick()
    return h


def signed(task: RoundTask, fed: Layout, cid: str = "a", *, signer: str | None = None, **kw: Any) -> ClientUpdate:
    delta = np.linspace(-0.1, 0.1, SIZE).astype(np.float32)
    update = make_update(task, cid, delta, metrics={"loss": 0.5}, **kw)[0]
    return sign_update(update, key(fed, signer or cid))


def snapshot(h: Harness, rnd: int) -> tuple[bytes, int, list[Any], frozenset[str]]:
    """Everything a refused update must leave unchanged: the strategy's round sums, WAL, journal."""
    e = h.engine
    return e.strategy.round_bytes(), e.wal.count(rnd), e.journal.accepted(rnd), e.strategy.clients


def refused(h: Harness, cid: str, update: ClientUpdate, reason: str) -> None:
    task = h.task()
    before = snapshot(h, task.round)
    acks = h.send(cid, frames(update))
    assert [(a.accepted, a.reason, a.update_id) for a in acks] == [(False, reason, update.update_id)]
    assert snapshot(h, task.round) == before
    assert h.engine.open_round is not None
    assert h.engine.open_round.rejected_by_reason().get(reason, 0) >= 1


# --- the wire format -----------------------------------------------------------------------------------


def test_signing_input_golden_vector() -> None:
    """Pins the exact bytes a device in any language must sign (docs/protocol.md, "Signed updates")."""
    update = ClientUpdate(
        federation="default", bundle_id="b1", round=3, model_version=2, client_id="dev-1", num_samples=480,
        update_id="00112233445566778899aabbccddeeff", payload=b"\x01\x02\x03",
        metrics={"train_loss": 0.5, "eval_accuracy": 0.1}, nonce="ffeeddccbbaa99887766554433221100",
    )
    expected = (
        b"fmfl-update-sig/1\n"
        b'{"bundle_id":"b1","client_id":"dev-1","federation":"default",'
        b'"metrics":{"eval_accuracy":"3fb999999999999a","train_loss":"3fe0000000000000"},'
        b'"model_version":2,"nonce":"ffeeddccbbaa99887766554433221100","num_samples":480,'
        b'"payload_sha256":"039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81",'
        b'"round":3,"update_id":"00112233445566778899aabbccddeeff"}'
    )
    assert update.signing_input() == expected
    key = Ed25519PrivateKey.from_private_bytes(GOLDEN_KEY_SEED)
    sig = sign_update(update, key).signature
    assert sig is not None
    assert base64.b64encode(sig).decode() == GOLDEN_SIGNATURE


def test_signed_update_roundtrips_and_unsigned_metadata_is_unchanged(fed: Layout) -> None:
    task = RoundTask("default", "b1", 1, 0, ("a",), 8, 0.1, "dense", 1e9, 7, local_epochs=1)
    plain = make_update(task, "a", np.ones(SIZE, np.float32))[0]
    meta = json.loads(plain.to_bytes()[16 : 16 + int.from_bytes(plain.to_bytes()[8:12], "little")])
    assert sorted(meta) == sorted(
        ["federation", "bundle_id", "round", "model_version", "client_id", "num_samples", "update_id", "metrics"]
    )  # the 1.0 keys only: an unsigned update reads as before
    s = sign_update(plain, key(fed, "a"))
    back = ClientUpdate.from_bytes(s.to_bytes(), Limits.for_vector_size(SIZE))
    assert back == s
    assert back.nonce is not None
    assert back.signature is not None
    assert len(back.signature) == 64


def test_a_malformed_signature_or_nonce_is_bad_metadata(fed: Layout) -> None:
    task = RoundTask("default", "b1", 1, 0, ("a",), 8, 0.1, "dense", 1e9, 7, local_epochs=1)
    s = sign_update(make_update(task, "a", np.ones(SIZE, np.float32))[0], key(fed, "a"))
    limits = Limits.for_vector_size(SIZE)
    for old, new in ((b'"sig":"', b'"sig":"!'), (s.nonce.encode(), b"NOT-HEX-" + s.nonce[8:].encode())):  # type: ignore[union-attr]
        data = s.to_bytes()
        body = data[:-4].replace(old, new)
        body = body[:8] + (int.from_bytes(body[8:12], "little") + len(new) - len(old)).to_bytes(4, "little") + body[12:]
        import zlib

        with pytest.raises(ProtocolError) as err:
            ClientUpdate.from_bytes(body + zlib.crc32(body).to_bytes(4, "little"), limits)
        assert err.value.reason == "bad_metadata"
    with pytest.raises(ProtocolError, match="64"):
        replace(s, signature=b"\x00" * 63)


# --- refusals at the gateway ---------------------------------------------------------------------------


def test_a_signed_update_is_accepted_and_its_nonce_journaled(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed)
    task = h.task()
    update = signed(task, fed, "a")
    assert [a.accepted for a in h.send("a", frames(update))] == [True]
    assert [r.nonce for r in h.engine.journal.accepted(task.round)] == [update.nonce]
    assert h.engine.wal.update_with_nonce("a", update.nonce or "") == update.update_id


def test_unsigned_update_is_refused(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed)
    task = h.task()
    plain = make_update(task, "a", np.ones(SIZE, np.float32))[0]
    refused(h, "a", plain, "unsigned")
    refused(h, "a", replace(plain, nonce="ab" * 16), "unsigned")  # a nonce without a signature


def test_forged_with_another_devices_key_is_refused(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed)
    refused(h, "a", signed(h.task(), fed, "a", signer="b"), "bad_signature")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda u: replace(u, payload=u.payload[:-1] + bytes([u.payload[-1] ^ 1])), id="payload"),
        pytest.param(lambda u: replace(u, metrics={"loss": 0.25}), id="metrics"),
        pytest.param(lambda u: replace(u, num_samples=u.num_samples * 100), id="num_samples"),
        pytest.param(lambda u: replace(u, round=u.round + 1), id="round"),
        pytest.param(lambda u: replace(u, nonce="0" * 32), id="nonce"),
    ],
)
def test_a_tampered_signed_update_is_refused(tmp_path: Path, fed: Layout, tamper: Any) -> None:
    h = harness(tmp_path, fed)
    refused(h, "a", tamper(signed(h.task(), fed, "a")), "bad_signature")


def test_unknown_device_is_refused(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed)
    h.register("ghost")  # registered over MQTT, but not provisioned: devices.json does not know it
    stranger = Ed25519PrivateKey.generate()
    update = sign_update(make_update(h.task(), "ghost", np.ones(SIZE, np.float32))[0], stranger)
    refused(h, "ghost", update, "unknown_device")


def test_revocation_takes_effect_without_a_restart(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed)
    task = h.task()
    before = signed(task, fed, "b")
    revoke(fed.root, "a")  # `fmfl provision --revoke a` rewrites devices.json while the gateway runs
    refused(h, "a", signed(task, fed, "a"), "revoked_device")
    assert [a.accepted for a in h.send("b", frames(before))] == [True]  # b is still trusted


def test_a_replayed_nonce_is_refused_also_after_a_restart(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed, rounds=3)
    task = h.task()
    first = signed(task, fed, "a")
    assert [a.accepted for a in h.send("a", frames(first))] == [True]
    # The same nonce under a new update id (a device reusing randomness, or a cloned state folder):
    again = signed(task, fed, "a", update_id="f" * 32, nonce=first.nonce)
    refused(h, "a", again, "replayed_nonce")
    h.send("b", frames(signed(task, fed, "b")))
    assert h.engine.version == 1
    # Restart: the nonce is remembered by the journal, across rounds.
    h.engine.close()
    h2 = harness(tmp_path, fed, resume=True, rounds=3)
    h2.register("a", "b")
    h2.tick()
    task2 = h2.task()
    assert task2.round == 2
    refused(h2, "a", signed(task2, fed, "a", update_id="e" * 32, nonce=first.nonce), "replayed_nonce")
    # ... while the same device with a fresh nonce is fine:
    assert [a.accepted for a in h2.send("a", frames(signed(task2, fed, "a")))] == [True]


def test_nonce_in_the_wal_survives_a_crash_before_the_journal_row(tmp_path: Path, fed: Layout) -> None:
    """A kill between the WAL append (fsynced, the Ack's condition) and the journal row: the WAL still knows."""
    h = harness(tmp_path, fed)
    task = h.task()
    first = signed(task, fed, "a")
    h.send("a", frames(first))
    h.engine.journal.forget_accepted(task.round)  # what a kill before record_accepted leaves behind
    refused(h, "a", signed(task, fed, "a", update_id="d" * 32, nonce=first.nonce), "replayed_nonce")


def test_a_nonce_only_in_the_wal_is_journaled_at_resume_and_outlives_the_wal(tmp_path: Path, fed: Layout) -> None:
    """Killed between the WAL append and the journal row, then resumed: the replayed update's journal row
    keeps its nonce, so the replay check still knows it after the round closes and the WAL is pruned."""
    h = harness(tmp_path, fed, rounds=3)
    task = h.task()
    first = signed(task, fed, "a")
    assert [a.accepted for a in h.send("a", frames(first))] == [True]
    h.engine.journal.forget_accepted(task.round)  # what a kill before record_accepted leaves behind
    h.engine.close()
    h2 = harness(tmp_path, fed, resume=True, rounds=3)
    h2.register("a", "b")
    assert h2.task().round == 1
    assert [a.accepted for a in h2.send("b", frames(signed(h2.task(), fed, "b")))] == [True]
    assert h2.engine.version == 1
    assert h2.engine.wal.update_with_nonce("a", first.nonce or "") is None
    h2.tick()
    task2 = h2.task()
    assert task2.round == 2
    refused(h2, "a", signed(task2, fed, "a", update_id="c" * 32, nonce=first.nonce), "replayed_nonce")


def test_a_legit_resend_is_acked_again_and_counted_once(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed)
    task = h.task()
    update = signed(task, fed, "a")
    for _ in range(3):  # lost Acks: the byte-identical message again (same update id, same nonce)
        assert [(a.accepted, a.reason) for a in h.send("a", frames(update))] == [(True, "")]
    assert h.engine.wal.count(task.round) == 1
    assert h.engine.strategy.clients == {"a"}
    h.send("b", frames(signed(task, fed, "b")))
    assert h.engine.version == 1
    # After the round closed, the journal still answers a resend with an accepted Ack (not replayed_nonce).
    assert [(a.accepted, a.reason) for a in h.send("a", frames(update))] == [(True, "")]


def test_an_old_signed_update_replayed_in_a_later_round_is_stale(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed, rounds=3)
    task = h.task()
    # b's first round-1 update never reached the gateway (an attacker captured it); round 1 closes without it.
    captured = signed(task, fed, "b")
    h.send("a", frames(signed(task, fed, "a")))
    h.send("b", frames(signed(task, fed, "b")))  # b's own retry, a new update
    assert h.engine.version == 1
    h.tick()
    assert h.task().round == 2
    refused(h, "b", captured, "stale_round")


def test_registry_for_another_federation_is_refused_at_start(tmp_path: Path, fed: Layout) -> None:
    from fmfl.errors import FmflError

    with pytest.raises(FmflError, match="registry of federation 'default', not of 'other'"):
        UpdateVerifier(fed.registry, federation="other")
    with pytest.raises(FmflError, match="--device-registry"):
        UpdateVerifier(tmp_path / "missing.json")


def test_a_broken_registry_fails_closed(tmp_path: Path, fed: Layout) -> None:
    h = harness(tmp_path, fed)
    good = fed.registry.read_text()
    fed.registry.write_text(good[:40])
    update = signed(h.task(), fed, "a")
    before = snapshot(h, h.task().round)
    # Refused and not Acked: the gateway's fault, so the device keeps the update and resends it.
    assert h.send("a", frames(update)) == []
    assert snapshot(h, h.task().round) == before
    assert h.engine.open_round is not None
    assert h.engine.open_round.rejected_by_reason().get("registry_unreadable", 0) == 1
    fed.registry.write_text(good)
    assert [a.accepted for a in h.send("a", frames(update))] == [True]


def test_wal_and_journal_of_an_older_state_dir_gain_the_nonce_column(tmp_path: Path) -> None:
    """State dirs written before signed updates open, migrate, and keep their rows."""
    from fmfl.aggregator.durable.journal import RoundJournal
    from fmfl.aggregator.durable.wal import UpdateLog

    wal_path, journal_path = tmp_path / "updates.sqlite", tmp_path / "journal.sqlite"
    with sqlite3.connect(wal_path) as db:
        db.execute(
            "CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, update_id TEXT NOT NULL UNIQUE, "
            "round INTEGER NOT NULL, client_id TEXT NOT NULL, weight REAL NOT NULL, size INTEGER NOT NULL, "
            "indices BLOB NOT NULL, vals BLOB NOT NULL, UNIQUE (round, client_id))"
        )
        db.execute("INSERT INTO updates VALUES (1, 'u0', 1, 'a', 1.0, 1, x'', x'')")
    with sqlite3.connect(journal_path) as db:
        db.execute(
            "CREATE TABLE accepted (update_id TEXT PRIMARY KEY, round INTEGER NOT NULL, client_id TEXT NOT NULL, "
            "update_round INTEGER NOT NULL, bytes INTEGER NOT NULL, num_samples INTEGER NOT NULL, "
            "metrics TEXT NOT NULL)"
        )
        db.execute("INSERT INTO accepted VALUES ('u0', 1, 'a', 1, 10, 5, '{}')")
    with UpdateLog(wal_path) as wal, RoundJournal(journal_path) as journal:
        assert wal.contains("u0")
        assert [r.nonce for r in journal.accepted(1)] == [None]
        wal.append(round=2, client_id="a", update_id="u1", weight=1.0, indices=np.zeros(0, np.int64),
                   values=np.zeros(0, np.float32), size=1, nonce="ab" * 16)
        assert wal.update_with_nonce("a", "ab" * 16) == "u1"
        assert wal.update_with_nonce("b", "ab" * 16) is None


# --- gateways: CLI wiring, workers, a lower tier ---------------------------------------------------------


def test_cli_flags_reach_the_settings(tmp_path: Path, fed: Layout) -> None:
    from fmfl.aggregator.cli.aggregator import settings_from_args
    from fmfl.cli import build_parser
    from fmfl.errors import FmflError

    bundle = make_synthetic_bundle(tmp_path / "bundle", SIZE)
    base = ["aggregator", "--bundle", str(bundle), "--broker", "mqtt://127.0.0.1:1", "--state-dir", str(tmp_path),
            "--rounds", "1", "--clients-per-round", "1"]
    signing = ["--upstream-federation", "top", "--upstream-id", "gw", "--upstream-signing-key",
               str(fed.device("a").signing_key)]
    args = build_parser().parse_args([*base, "--device-registry", str(fed.registry), *signing])
    settings = settings_from_args(args)
    assert settings.device_registry == fed.registry
    assert settings.upstream is not None
    assert settings.upstream.signing_key == fed.device("a").signing_key
    with pytest.raises(FmflError, match="give --upstream-federation"):
        settings_from_args(build_parser().parse_args([*base, "--upstream-signing-key", "k"]))
    client = build_parser().parse_args(["client", "--bundle", "b", "--data", "d", "--signing-key", "k.pem"])
    assert client.signing_key == Path("k.pem")


def test_a_bad_signing_key_stops_the_device_before_it_reads_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from fmfl.cli import main

    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    for path, message in ((tmp_path / "missing.key", "cannot read the update signing key"),
                          (ec_key, "is not an Ed25519 private key (use devices/ID/signing.key")):
        argv = ["client", "--bundle", str(tmp_path / "no-bundle"), "--data", str(tmp_path / "no-data"),
                "--broker", "mqtt://127.0.0.1:1", "--state-dir", str(tmp_path / "state"), "--signing-key", str(path)]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "state").exists()


def test_a_bad_device_registry_stops_the_gateway_before_it_writes_state(
    tmp_path: Path, fed: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    from fmfl.cli import main

    bundle = make_synthetic_bundle(tmp_path / "bundle", SIZE)
    broken = tmp_path / "devices.json"
    broken.write_text('{"format": "fmfl-devices/1"}')
    for registry, federation, message in (
        (tmp_path / "missing.json", "default", "No such file"),
        (broken, "default", "devices.json is malformed"),
        (fed.registry, "other", "registry of federation 'default', not of 'other'"),
    ):
        argv = ["aggregator", "--bundle", str(bundle), "--broker", "mqtt://127.0.0.1:1", "--federation", federation,
                "--state-dir", str(tmp_path / "state"), "--rounds", "1", "--clients-per-round", "1",
                "--device-registry", str(registry)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--device-registry {registry}" in err, err
        assert message in err, err
        assert not (tmp_path / "state").exists()


def test_a_worker_checks_signatures_like_the_coordinator(tmp_path: Path, fed: Layout) -> None:
    from fmfl.aggregator.app.server import ServerSettings, build_worker
    from fmfl.aggregator.core.observer import RoundObserver
    from fmfl.aggregator.core.round_config import RoundConfig
    from fmfl.mqtt import parse_broker_url

    bundle = make_synthetic_bundle(tmp_path / "bundle", SIZE)
    settings = ServerSettings(
        bundle=bundle, broker=parse_broker_url("mqtt://127.0.0.1:1"), state_dir=tmp_path / "w",
        round=RoundConfig(federation="default", rounds=1, clients_per_round=1, min_clients=1, round_timeout=1.0,
                          local_epochs=1),
        worker_id="w1", device_registry=fed.registry,
    )
    worker = build_worker(settings, RoundObserver())
    try:
        task = RoundTask("default", worker.bundle_id, 1, 0, ("a",), 8, 0.1, "dense", 1e12, 1, local_epochs=1)
        plain = make_update(task, "a", np.ones(SIZE, np.float32))[0]
        assert worker.ingest.ingest("a", plain.to_bytes(), None).reason == "unsigned"
        assert worker.ingest.ingest("a", sign_update(plain, key(fed, "b")).to_bytes(), None).reason == "bad_signature"
        assert worker.wal.count(1) == 0
    finally:
        worker.close()


def test_a_lower_tier_signs_what_it_sends_upstream(tmp_path: Path, fed: Layout) -> None:
    """gw 'a' is a device of the parent federation: its weighted mean goes up signed, and the resend after a
    restart is the same signed bytes."""
    from fmfl.aggregation.accumulator import WeightedSum
    from fmfl.aggregator.topology.tier import UpstreamConfig, UpstreamTier
    from fmfl.protocol import Reassembler

    cfg = UpstreamConfig("default", "a", signing_key=fed.device("a").signing_key)
    tier = UpstreamTier(cfg, bundle_id="b1", size=SIZE, state_dir=tmp_path, max_packet_bytes=128 * 1024)
    task = RoundTask("default", "b1", 4, 3, ("a",), 8, 0.1, "dense", 2e9, 1, local_epochs=1)
    total = WeightedSum(SIZE)
    total.add(np.arange(SIZE, dtype=np.int64), np.full(SIZE, 1.0, np.float32), 3.0)
    (sent,) = tier.forward(task, total, {"eval_accuracy": 0.5})
    update = ClientUpdate.from_bytes(Reassembler(2**20).add(sent.payload), Limits.for_vector_size(SIZE))
    assert UpdateVerifier(fed.registry).check(update) is None
    assert UpdateVerifier(fed.registry).check(replace(update, num_samples=400)) == "bad_signature"
    again = UpstreamTier(cfg, bundle_id="b1", size=SIZE, state_dir=tmp_path, max_packet_bytes=128 * 1024)
    assert [o.payload for o in again.start() if "/update/" in o.topic] == [sent.payload]


# --- the device and gateway stay torch-free with signing on -------------------------------------------------


def test_signing_and_verifying_import_neither_torch_nor_transformers(fed: Layout) -> None:
    code = (
        "import sys\n"
        "import fmfl.edge_client.device, fmfl.aggregator.app.server\n"
        "from fmfl.protocol import ClientUpdate\n"
        "from fmfl.trust import UpdateVerifier, load_signing_key, sign_update\n"
        "u = ClientUpdate('default', 'b1', 1, 0, 'a', 5, 'u1', b'x')\n"
        f"u = sign_update(u, load_signing_key({str(fed.device('a').signing_key)!r}))\n"
        f"assert UpdateVerifier({str(fed.registry)!r}).check(u) is None\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'onnx')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_fmfl_help_and_client_parser_do_not_import_cryptography() -> None:
    code = (
        "import sys\n"
        "from fmfl.cli import build_parser\n"
        "build_parser().parse_args(['client', '--bundle', 'b', '--data', 'd', '--signing-key', 'k'])\n"
        "print('CRYPTO', any(m.split('.')[0] == 'cryptography' for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "CRYPTO False" in out.stdout, out.stdout + out.stderr


# --- one real round: fmfl aggregator --device-registry and fmfl client --signing-key on Mosquitto ------


def _fmnist_shard(path: Path) -> Path:
    from fmfl.datasets.fashion_mnist import load_fashion_mnist
    from fmfl.edge_client.data import write_npz

    data = load_fashion_mnist("train")
    write_npz(path, data.images[:200], data.labels[:200].astype(np.int64))
    return path


def _ack_for(probe: Any, topics: Any, update: ClientUpdate, timeout: float = 60) -> Any:
    """Publish ``update`` as a device does (resending until its Ack arrives: the gateway may still be
    connecting) and return the Ack."""
    import queue
    import time

    from fmfl.protocol import Ack, Reassembler

    reassembler = Reassembler(2**20)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for chunk in frames(update):
            probe.publish(topics.update(update.client_id), chunk)
        try:
            topic, payload = probe.receive(timeout=2)
        except queue.Empty:
            continue
        data = reassembler.add(payload, topic)
        if data is not None:
            ack = Ack.from_bytes(data, Limits.for_vector_size(SIZE))
            if ack.update_id == update.update_id:
                return ack
    raise AssertionError("no Ack from the gateway")


@pytest.mark.slow
def test_a_real_signed_round_on_a_provisioned_broker(
    fresh_federation: Any, probes: list[Any], tiny_vit_bundle: Path, tmp_path: Path
) -> None:
    from support.gateway_harness import AggregatorProcess, read_metrics
    from support.trust import FEDERATION, Probe

    from fmfl.bundle import verify_bundle

    fed = fresh_federation
    url = f"mqtts://127.0.0.1:{fed.port}"
    gateway, dev1 = fed.layout.gateway("aggregator"), fed.layout.device("dev-1")
    bundle_id = verify_bundle(tiny_vit_bundle).bundle_id
    state = tmp_path / "gateway"
    agg = AggregatorProcess(tmp_path, [
        "--bundle", str(tiny_vit_bundle), "--broker", url, "--federation", FEDERATION, "--state-dir", str(state),
        "--rounds", "1", "--clients-per-round", "1", "--min-clients", "1", "--local-steps", "2",
        "--round-timeout", "240", "--start-timeout", "240", "--device-registry", str(fed.layout.registry),
        "--username", "aggregator", "--password", fed.password("aggregator"), "--cafile", str(gateway.cafile),
    ])  # fmt: skip
    client = None
    try:
        # dev-2 (its own broker credentials, so the broker lets it publish) sends unsigned and forged updates.
        probe = Probe(fed.options("dev-2"), client_id="dev-2")
        probes.append(probe)
        assert not probe.connect().is_failure
        probe.subscribe(fed.topics.ack("dev-2"))
        task = RoundTask(FEDERATION, bundle_id, 1, 0, ("dev-2",), 8, 0.1, "dense", 1e12, 1, local_epochs=1)
        plain = make_update(task, "dev-2", np.zeros(4, np.float32))[0]
        assert (_ack_for(probe, fed.topics, plain).reason) == "unsigned"
        forged = sign_update(replace(plain, update_id="a" * 32), load_signing_key(dev1.signing_key))
        assert _ack_for(probe, fed.topics, forged).reason == "bad_signature"

        # dev-1, the real device process, signs with its provisioned key: the round closes on its update.
        client = subprocess.Popen(
            [sys.executable, "-m", "fmfl.cli", "-v", "client", "--bundle", str(tiny_vit_bundle),
             "--data", str(_fmnist_shard(tmp_path / "shard.npz")), "--state-dir", str(tmp_path / "dev-1"),
             "--broker", url, "--client-id", "dev-1", "--federation", FEDERATION, "--rounds", "1",
             "--username", "dev-1", "--password", fed.password("dev-1"), "--cafile", str(dev1.cafile),
             "--signing-key", str(dev1.signing_key)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert agg.wait(240) == 0, agg.stdout + agg.stderr
        out, _ = client.communicate(timeout=60)
        assert client.returncode == 0, out
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        if agg.proc.poll() is None:
            agg.kill()
    assert re.search(r"round 1 update [0-9a-f]{32} accepted", out), out[-3000:]
    [line] = read_metrics(state)
    assert (line["round"], line["status"], line["participants"]) == (1, "ok", 1), line
    with sqlite3.connect(state / "journal.sqlite") as db:
        rows = db.execute("SELECT client_id, nonce FROM accepted").fetchall()
    assert len(rows) == 1
    assert rows[0][0] == "dev-1"
    assert len(rows[0][1]) == 32

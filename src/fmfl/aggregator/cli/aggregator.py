"""``fmfl aggregator``: run federated rounds over MQTT on a gateway.

Only argparse at import time (``fmfl --help`` on a device must not load numpy); the run imports the
gateway modules, which never import torch, transformers or onnxruntime.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmfl.aggregator.cli.dp_options import add_dp_args, dp_strategy_options
from fmfl.aggregator.cli.options import add_aggregation_args, add_mqtt_args, mqtt_options, parse_strategy_option


def register(sub: Any) -> None:
    p = sub.add_parser(
        "aggregator",
        help="run federated rounds over MQTT (gateway)",
        description="Run federated rounds over MQTT: select devices, publish the global model and task, "
        "validate and aggregate their updates, save every global version. See docs/aggregator.md.",
    )
    p.add_argument("--bundle", required=True, type=Path, help="the bundle the devices train (verified)")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--federation", default="default", help="federation name (topic level; default 'default')")
    p.add_argument("--state-dir", required=True, type=Path, help="global versions, WAL, journal, metrics.jsonl")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --state-dir")

    r = p.add_argument_group("rounds")
    r.add_argument("--rounds", required=True, type=int, help="global versions to produce (in total)")
    r.add_argument("--clients-per-round", required=True, type=int, help="K: accepted updates that close a round")
    r.add_argument("--min-clients", type=int, help="quorum: fewer accepted updates fail the round (default K)")
    r.add_argument("--round-timeout", type=float, default=600.0, help="seconds until the deadline (default 600)")
    r.add_argument("--over-select", type=float, default=1.3, help="invite ceil(K * this) clients (default 1.3)")
    r.add_argument(
        "--start-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for --min-clients eligible clients before giving up (default 300)",
    )
    r.add_argument(
        "--selection-window",
        type=float,
        default=5.0,
        help="with --min-clients but fewer than ceil(K * over-select) eligible, wait this long "
        "for more before opening a round (default 5)",
    )
    r.add_argument("--max-failed-rounds", type=int, default=5, help="give up after this many failed rounds in a row")
    r.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="CAP>=N|CAP<=N|CAP=V",
        help="capability a selected client must have, e.g. memory_bytes>=2e9 (repeatable)",
    )
    r.add_argument("--seed", type=int, default=0, help="seeds selection and the clients' round seeds")
    r.add_argument(
        "--async",
        dest="async_mode",
        action="store_true",
        help="fold late updates into the current round with FedBuff staleness weights",
    )
    r.add_argument("--max-staleness", type=int, default=4, help="async: oldest accepted base version lag")

    t = p.add_argument_group("client task")
    steps = t.add_mutually_exclusive_group()
    steps.add_argument("--local-epochs", type=int, help="local epochs per round (default 1)")
    steps.add_argument("--local-steps", type=int, help="local optimizer steps per round")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, help="client learning rate (default: the bundle's)")
    t.add_argument("--codec", help="update codec spec told to clients (default: fmfl.protocol.DEFAULT_CODEC), "
                   "or a density warm-up schedule CODEC@ROUNDS,...,CODEC (fmfl.protocol.codec.schedule)")
    t.add_argument("--downlink-codec",
                   help="codec of the global model's change sent to devices that hold the previous version, "
                        "with server-side error feedback (docs/protocol.md 2b; default topk:0.1+int8+ef, "
                        "fmfl.aggregator.core.downlink.DEFAULT_DOWNLINK_CODEC; dense: no deltas)")

    add_aggregation_args(p)
    add_dp_args(p)
    add_mqtt_args(p)
    m = p.add_argument_group("scale-out (see docs/scaling.md)")
    m.add_argument(
        "--workers",
        default="",
        metavar="ID,ID",
        help="worker ids (`fmfl aggregator-worker --worker-id ID`) that share the update stream",
    )
    m.add_argument(
        "--upstream-federation",
        help="run as a lower tier: join this (parent) federation as one client and send each local "
        "round's weighted mean upstream; needs --upstream-id",
    )
    m.add_argument("--upstream-id", help="this gateway's client id in the parent federation")
    m.add_argument("--upstream-codec", default="dense", help="codec of the update sent upstream (default dense)")
    m.add_argument(
        "--upstream-signing-key",
        type=Path,
        help="sign the updates sent upstream with this Ed25519 key (signing.key of this gateway's id, "
        "provisioned as a device of the parent federation; needed when the parent runs --device-registry)",
    )
    m.add_argument(
        "--partial-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the workers' shares when a round closes (default 30)",
    )

    p.add_argument("--trust-key", type=Path, help="Ed25519 public key: require a valid bundle signature")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.set_defaults(handler=run_aggregator)


def run_aggregator(args: argparse.Namespace) -> int:
    from fmfl.aggregator.app.server import serve

    return serve(settings_from_args(args))


def settings_from_args(args: argparse.Namespace) -> Any:
    """``ServerSettings`` from parsed arguments; bad values become one-line ``FmflError``s."""
    from fmfl.aggregator.app.server import ServerSettings
    from fmfl.aggregator.core.downlink import DEFAULT_DOWNLINK_CODEC
    from fmfl.aggregator.core.requirements import Requirement
    from fmfl.aggregator.core.round_config import RoundConfig
    from fmfl.bundle import MANIFEST_FILE, Manifest
    from fmfl.errors import FmflError
    from fmfl.protocol import DEFAULT_CODEC, DEFAULT_MAX_PACKET_BYTES

    lr = args.lr
    if lr is None:
        # Only a default is read here; the run verifies the whole bundle before using anything in it.
        try:
            raw = (args.bundle / MANIFEST_FILE).read_bytes()
        except OSError as exc:
            raise FmflError(f"bundle {args.bundle}: cannot read {MANIFEST_FILE}: {exc}") from exc
        lr = float(Manifest.from_json(raw).optimizer.get("lr", 1e-3))
    # RoundConfig and Requirement raise ConfigError: a one-line FmflError as it is.
    config = RoundConfig(
        federation=args.federation,
        rounds=args.rounds,
        clients_per_round=args.clients_per_round,
        min_clients=args.min_clients if args.min_clients is not None else args.clients_per_round,
        round_timeout=args.round_timeout,
        codec=args.codec or str(DEFAULT_CODEC),
        downlink_codec=args.downlink_codec or DEFAULT_DOWNLINK_CODEC,
        batch_size=args.batch_size,
        lr=lr,
        local_epochs=args.local_epochs or (1 if args.local_steps is None else None),
        local_steps=args.local_steps,
        over_select=args.over_select,
        seed=args.seed,
        async_mode=args.async_mode,
        max_staleness=args.max_staleness,
        start_timeout=args.start_timeout,
        selection_window=args.selection_window,
        max_failed_rounds=args.max_failed_rounds,
        max_packet_bytes=args.max_packet_bytes or DEFAULT_MAX_PACKET_BYTES,
        requirements=tuple(Requirement.parse(t) for t in args.require),
    )
    broker = mqtt_options(args)
    upstream = None
    if args.upstream_federation or args.upstream_id:
        from fmfl.aggregator.topology.tier import UpstreamConfig

        if not (args.upstream_federation and args.upstream_id):
            raise FmflError("--upstream-federation and --upstream-id go together")
        upstream = UpstreamConfig(  # a ConfigError as it is
            args.upstream_federation,
            args.upstream_id,
            codec=args.upstream_codec,
            signing_key=args.upstream_signing_key,
        )
    elif args.upstream_signing_key is not None:
        raise FmflError("--upstream-signing-key signs what a lower tier sends upstream: give --upstream-federation")
    workers = tuple(w.strip() for w in args.workers.split(",") if w.strip())
    return ServerSettings(
        bundle=args.bundle,
        broker=broker,
        state_dir=args.state_dir,
        round=config,
        strategy=args.strategy,
        strategy_options={
            **dict(parse_strategy_option(o) for o in args.strategy_option),
            **dp_strategy_options(args, config.clients_per_round, config.selection_size),
        },
        max_norm=args.max_norm,
        trust_key=args.trust_key,
        resume=args.resume,
        metrics_port=args.metrics_port,
        share_group=args.share_group or (f"fmfl-{args.federation}" if workers else None),
        client_id=args.client_id,
        workers=workers,
        partial_timeout=args.partial_timeout,
        upstream=upstream,
        device_registry=args.device_registry,
    )

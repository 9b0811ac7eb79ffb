"""``fmfl aggregator-worker``: one more process taking a share of the update stream (scale-out).

Only argparse at import time, like ``cli.py``; listed in ``fmfl.cli.SUBCOMMAND_MODULES`` on its own.
See docs/scaling.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmfl.aggregator.cli.options import add_aggregation_args, add_mqtt_args, mqtt_options, parse_strategy_option


def register(sub: Any) -> None:
    p = sub.add_parser(
        "aggregator-worker",
        help="take a share of the update stream for an `fmfl aggregator --workers ...` (gateway)",
        description="Check, log and acknowledge a share of the devices' updates (MQTT shared "
        "subscription) and hand the partial round to the coordinator. See docs/scaling.md.",
    )
    p.add_argument("--bundle", required=True, type=Path, help="the same bundle as the coordinator's")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--federation", default="default")
    p.add_argument("--worker-id", required=True, help="this worker's id, as listed in the coordinator's --workers")
    p.add_argument("--state-dir", required=True, type=Path, help="this worker's WAL and journal")
    p.add_argument("--trust-key", type=Path, help="Ed25519 public key: require a valid bundle signature")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    add_aggregation_args(p)
    add_mqtt_args(p)
    p.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from fmfl.aggregator.app.server import ServerSettings, serve
    from fmfl.aggregator.core.round_config import RoundConfig
    from fmfl.protocol import DEFAULT_MAX_PACKET_BYTES, check_id

    check_id(args.worker_id, "worker id")  # a ProtocolError, an FmflError: one line
    # A worker only checks and logs updates: the round settings come from the coordinator's task.
    config = RoundConfig(  # a ConfigError as it is
        federation=args.federation,
        rounds=1,
        clients_per_round=1,
        min_clients=1,
        round_timeout=1.0,
        local_epochs=1,
        max_packet_bytes=args.max_packet_bytes or DEFAULT_MAX_PACKET_BYTES,
    )
    settings = ServerSettings(
        bundle=args.bundle,
        broker=mqtt_options(args),
        state_dir=args.state_dir,
        round=config,
        strategy=args.strategy,
        strategy_options=dict(parse_strategy_option(o) for o in args.strategy_option),
        max_norm=args.max_norm,
        trust_key=args.trust_key,
        metrics_port=args.metrics_port,
        share_group=args.share_group or f"fmfl-{args.federation}",
        client_id=args.client_id or f"fmfl-aggregator-{args.federation}-{args.worker_id}",
        worker_id=args.worker_id,
        device_registry=args.device_registry,
    )
    return serve(settings)

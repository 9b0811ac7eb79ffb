"""Command-line options shared by ``fmfl aggregator`` and ``fmfl aggregator-worker``.

Both commands import from here and never from each other (they used to: ``cli`` registered the worker's
command and the worker imported ``cli``'s private helpers back, a cycle). Only argparse at import time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmfl.errors import FmflError
from fmfl.mqtt.cli_options import add_broker_auth, broker_options


def add_aggregation_args(p: Any) -> None:
    """Options every aggregating process needs to agree on (coordinator and workers)."""
    a = p.add_argument_group("aggregation")
    a.add_argument(
        "--strategy",
        default="fedavg",
        help="fedavg, fedavgm, fedadam, fedyogi, fedadagrad, trimmed-mean, median, krum, multi-krum, "
        "dp-fedavg (see the --dp-* options); '_' for '-' works too (default fedavg)",
    )
    a.add_argument(
        "--strategy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword option of the strategy, e.g. server_lr=0.1 (repeatable)",
    )
    a.add_argument("--max-norm", type=float, help="refuse updates whose L2 norm exceeds this")
    a.add_argument(
        "--device-registry",
        type=Path,
        metavar="DEVICES_JSON",
        help="devices.json from `fmfl provision`: accept only updates signed by an active device in it "
        "(re-read when it changes, so --revoke needs no restart); see docs/security.md",
    )


def add_mqtt_args(p: Any) -> None:
    m = p.add_argument_group("MQTT")
    add_broker_auth(m)
    m.add_argument("--mqtt5", action="store_true", help="speak MQTT 5 (needed by some brokers for $share)")
    m.add_argument("--max-packet-bytes", type=int, help="largest MQTT payload to publish (default 128 KiB)")
    m.add_argument("--share-group", help="subscribe to updates as $share/GROUP/... (with --workers)")
    m.add_argument("--client-id", help="MQTT client id (default fmfl-aggregator-FEDERATION)")


def mqtt_options(args: argparse.Namespace) -> Any:
    return broker_options(args, mqtt5=args.mqtt5)


def parse_strategy_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--strategy-option``: the value as an int, else a float, else the string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise FmflError(f"--strategy-option {text!r} must be KEY=VALUE")
    value: Any
    try:
        value = int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            value = raw
    return key.strip(), value

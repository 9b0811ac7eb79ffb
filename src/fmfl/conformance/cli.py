"""``fmfl conformance``: play the gateway against a device under test. Only argparse at import time."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmfl.mqtt.cli_options import add_broker_auth, broker_options


def register(sub: Any) -> None:
    p = sub.add_parser(
        "conformance",
        help="check a device (any language) against the protocol: play the gateway, print PASS/FAIL per check",
        description="Start this, then start (or restart) the device under test on the same broker and federation. "
        "The kit drives it through join, a chunked global model, selection, every negative Ack, a withheld Ack, "
        "a new run and a duplicate task, and exits 1 if any check fails (docs/protocol.md, 'Conformance kit').",
    )
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--client-id", required=True, help="the client_id of the device under test")
    p.add_argument("--bundle", required=True, type=Path,
                   help="the bundle the device holds (for its id and trainable size; verified, never run)")
    p.add_argument("--federation", default="default")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for each thing the device must send (default 60)")
    p.add_argument("--resend-after", type=float, default=30.0, metavar="SECONDS",
                   help="the device's resend interval for unacknowledged updates (default 30, the reference's)")
    p.add_argument("--quiet", type=float, default=3.0, metavar="SECONDS",
                   help="the least time to watch for something that must not happen (default 3; the kit uses "
                        "at least twice the device's first training round)")
    add_broker_auth(p.add_argument_group("broker authentication"))
    p.set_defaults(handler=run_conformance)


def run_conformance(args: argparse.Namespace) -> int:
    from fmfl.conformance.scenarios import Conformance, KitConfig
    from fmfl.protocol import check_id

    check_id(args.client_id)
    cfg = KitConfig.from_bundle(args.bundle, broker=broker_options(args), client_id=args.client_id,
                                federation=args.federation, timeout=args.timeout, resend_after=args.resend_after,
                                quiet=args.quiet)
    report = Conformance(cfg).run()
    return 0 if report.passed else 1

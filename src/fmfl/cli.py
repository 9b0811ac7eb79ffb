"""The ``fmfl`` command line.

Each subcommand lives with the place it runs on (``fmfl.export.cli``, ``fmfl.edge_client.cli``, ...).
Those modules import only ``argparse`` at import time, so ``fmfl client`` on a device never loads
torch: the heavy imports happen inside each subcommand's ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from fmfl.errors import FmflError

# name -> module defining ``register(subparsers)``; order is the order shown in ``--help``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "fmfl.export.cli",
    "fmfl.edge_client.cli",
    "fmfl.aggregator.cli.aggregator",
    "fmfl.aggregator.cli.worker",
    "fmfl.demo.cli",
    "fmfl.provision.cli",
    "fmfl.conformance.cli",
    "fmfl.web.cli",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmfl", description="federated fine-tuning of compact foundation models on edge devices"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A place not built yet (or stripped from a device image) simply has no subcommands.
            if exc.name is not None and module_name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except FmflError as exc:
        print(f"fmfl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fmfl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

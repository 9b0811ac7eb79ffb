"""Broker authentication options shared by every command that connects (argparse only at import time)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_broker_auth(group: Any) -> None:
    """``--username/--password`` and ``--cafile/--certfile/--keyfile`` on an argparse parser or group."""
    group.add_argument("--username")
    group.add_argument("--password")
    group.add_argument("--cafile", type=Path, help="CA certificate: connect with TLS")
    group.add_argument("--certfile", type=Path, help="client certificate (brokers that require one)")
    group.add_argument("--keyfile", type=Path, help="the client certificate's key")


def broker_options(args: argparse.Namespace, **extra: Any) -> Any:
    """``MqttOptions`` from ``args.broker`` and the options :func:`add_broker_auth` added."""
    from fmfl.mqtt.connection import parse_broker_url

    return parse_broker_url(args.broker, username=args.username, password=args.password, cafile=args.cafile,
                            certfile=args.certfile, keyfile=args.keyfile, **extra)

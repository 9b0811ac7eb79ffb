"""``fmfl provision``: credentials for a federation (CA, broker TLS and auth config, device identities).

Only argparse at import time; ``cryptography`` is imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "provision",
        help="create a development CA, broker TLS/password/ACL config and device credentials",
        description="Create (or, with --revoke, update) the credentials of one federation: a development CA, "
        "the broker's certificate, password file, ACL and mosquitto.conf, the gateway's and every device's "
        "password, client certificate and Ed25519 update-signing key, and devices.json. See docs/security.md.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (see docs/security.md for its layout)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--devices", metavar="ID,ID", help="device ids to provision")
    what.add_argument("--count", type=int, metavar="N", help="provision N devices named dev-1..dev-N")
    what.add_argument("--revoke", metavar="ID", help="revoke device ID in an existing --out folder")
    p.add_argument("--federation", help="federation name (required when provisioning)")
    p.add_argument("--prefix", default="fmfl", help="topic prefix (default fmfl)")
    p.add_argument("--gateway-id", default="aggregator", help="the gateway's MQTT username (default aggregator)")
    p.add_argument("--client-certs", action="store_true",
                   help="the broker requires a client certificate and takes its CN as the username")
    p.add_argument("--hostname", action="append", help="broker DNS name for its certificate (repeatable; "
                   "default localhost)")
    p.add_argument("--ip", action="append", help="broker IP address for its certificate (repeatable; "
                   "default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8883, help="TLS listener port (default 8883)")
    p.add_argument("--websockets-port", type=int, metavar="PORT",
                   help="also listen for web devices: MQTT over secure WebSockets (wss://) on PORT, password login")
    p.add_argument("--bind", help="listen on this address only (default: every interface)")
    p.add_argument("--days", type=int, default=365, help="validity of the broker and client certificates")
    p.add_argument("--force", action="store_true", help="replace an existing CA and every credential in --out")
    p.set_defaults(handler=run_provision)


def run_provision(args: argparse.Namespace) -> int:
    from fmfl.errors import FmflError

    if args.revoke is not None:
        if args.federation is not None or args.force or args.client_certs:
            raise FmflError("--revoke takes only --out (the federation is read from devices.json)")
        return _revoke(args.out, args.revoke)
    if not args.federation:
        raise FmflError("--federation is required when provisioning")
    return _provision(args)


def _provision(args: argparse.Namespace) -> int:
    from fmfl.provision.broker_conf import ListenerSpec
    from fmfl.provision.files import untraversable_by_broker
    from fmfl.provision.layout import Layout
    from fmfl.provision.provisioner import ProvisionError, ProvisionSpec, device_ids_for_count, provision

    if args.count is not None:
        ids = device_ids_for_count(args.count)
    else:
        ids = tuple(d.strip() for d in args.devices.split(",") if d.strip())
    hostnames, ips = args.hostname or [], args.ip or []
    if not hostnames and not ips:
        hostnames, ips = ["localhost"], ["127.0.0.1"]
    try:
        listener = ListenerSpec(port=args.port, bind_address=args.bind, client_certs=args.client_certs,
                                websockets_port=args.websockets_port)
    except ValueError as exc:
        raise ProvisionError(f"--port: {exc}") from exc
    registry = provision(ProvisionSpec(
        out=args.out, federation=args.federation, device_ids=ids, gateway_id=args.gateway_id, prefix=args.prefix,
        hostnames=tuple(hostnames), ips=tuple(ips), listener=listener, days=args.days, force=args.force,
    ))
    layout = Layout(args.out)
    broker, gw = layout.broker, layout.gateway(registry.gateway_id)
    host = (hostnames or ips)[0]
    url = f"mqtts://{host}:{args.port}"
    print(f"provisioned federation {registry.federation!r}: {len(registry.devices)} device(s), gateway "
          f"{registry.gateway_id!r}, client certificates {'required' if registry.client_certs else 'optional'}")
    print(f"  broker:     mosquitto -c {broker.conf.resolve()}")
    auth = (f"--certfile {gw.certfile} --keyfile {gw.keyfile}" if registry.client_certs
            else f"--username {registry.gateway_id} --password \"$(cat {gw.password})\"")
    print(f"  aggregator: fmfl aggregator --broker {url} --federation {registry.federation} --cafile {gw.cafile} "
          f"{auth} ...")
    dev = layout.device("ID")
    auth = (f"--certfile {dev.certfile} --keyfile {dev.keyfile}" if registry.client_certs
            else f"--username ID --password \"$(cat {dev.password})\"")
    print(f"  device ID:  fmfl client --broker {url} --federation {registry.federation} --client-id ID "
          f"--cafile {dev.cafile} {auth} ...")
    if args.websockets_port is not None:
        print(f"  web device ID: fmfl web --broker wss://{host}:{args.websockets_port} --federation "
              f"{registry.federation} ...; open the page with the fragment in {dev.web_fragment} appended")
    blocked = untraversable_by_broker(broker.root)
    if blocked is not None:
        print(f"warning: the mosquitto user cannot enter {blocked}, so a broker started as root cannot read "
              f"{broker.root}; move --out or run: chmod o+x {blocked}")
    return 0


def _revoke(out: Path, device_id: str) -> int:
    from fmfl.provision.revocation import revoke

    result = revoke(out, device_id)
    state = "revoked" if result.newly_revoked else "was already revoked; broker files rewritten for"
    print(f"{state} device {device_id!r} in federation {result.registry.federation!r}")
    print("  reload the broker's password file and ACL: kill -HUP <mosquitto pid>")
    if result.registry.client_certs:
        print("  restart the broker to load the new CRL (Mosquitto reads crlfile only at start)")
    return 0

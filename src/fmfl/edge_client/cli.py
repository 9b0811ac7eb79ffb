"""``fmfl client``: the device. Only argparse at import time; never imports torch or transformers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fmfl.mqtt.cli_options import add_broker_auth, broker_options


def register(sub: Any) -> None:
    p = sub.add_parser("client", help="run a device: fine-tune with ONNX Runtime on local data, talk MQTT")
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder from `fmfl export`")
    p.add_argument("--data", required=True, type=Path, help="local data: image folder, IDX, .npz, JSONL or CSV")
    p.add_argument("--client-id", default="device", help="this device's id (letters, digits, -_.)")
    p.add_argument("--broker", help="mqtt://host:port or mqtts://host:port (not needed with --once)")
    p.add_argument("--federation", default="default")
    p.add_argument("--state-dir", type=Path, help="crash-safe state (default: ./fmfl-state/CLIENT_ID)")
    p.add_argument("--trust-key", type=Path, help="Ed25519 public key: refuse bundles it did not sign")
    p.add_argument("--signing-key", type=Path,
                   help="Ed25519 private key (devices/ID/signing.key from `fmfl provision`): sign every update")
    add_broker_auth(p.add_argument_group("broker authentication"))
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--rounds", type=int, help="stop after this many rounds (default: run until stopped)")
    p.add_argument("--max-packet-bytes", type=int, default=128 * 1024)
    p.add_argument("--connect-attempts", type=int, default=8,
                   help="first-connection attempts (exponential backoff with jitter) before giving up")
    p.add_argument("--resend-after", type=float, default=30.0, metavar="SECONDS",
                   help="send an unacknowledged update again after this long (default 30; also on reconnect)")
    ldp = p.add_argument_group("local differential privacy: noise on the device (docs/privacy.md)")
    ldp.add_argument("--local-dp-clip", type=float, metavar="C", help="clip every delta to this L2 norm")
    ldp.add_argument("--local-dp-noise-multiplier", type=float, metavar="Z",
                     help="then add N(0, (Z*C)^2) to every coordinate, before the codec")
    ldp.add_argument("--local-dp-delta", type=float, default=1e-5,
                     help="delta of the local_dp_epsilon this device reports (default 1e-5)")
    once = p.add_argument_group("--once: one local round, no broker")
    once.add_argument("--once", action="store_true", help="train one local round and report, without a broker")
    once.add_argument("--epochs", type=int, default=1)
    once.add_argument("--batch-size", type=int, default=32)
    once.add_argument("--lr", type=float, help="default: the bundle's")
    once.add_argument("--codec", help="update codec to size the update with (default: fmfl's default)")
    p.set_defaults(handler=run_client)


def _device(args: argparse.Namespace) -> Any:
    from fmfl.edge_client.device import DeviceConfig, EdgeDevice
    from fmfl.privacy.local import local_dp_from_options

    local_dp = local_dp_from_options(args.local_dp_clip, args.local_dp_noise_multiplier, args.local_dp_delta)
    state = args.state_dir or Path("fmfl-state") / args.client_id
    return EdgeDevice(DeviceConfig(bundle=args.bundle, data=args.data, state_dir=state, local_dp=local_dp,
                                   client_id=args.client_id,
                                   trust_key=args.trust_key, threads=args.threads,
                                   signing_key=args.signing_key))


def run_client(args: argparse.Namespace) -> int:
    from fmfl.errors import FmflError
    from fmfl.protocol import check_id

    check_id(args.client_id)
    if args.once:
        return run_once(args)
    if not args.broker:
        raise FmflError("--broker is required unless --once is given")
    from fmfl.edge_client.runner import EdgeRunner, RunnerConfig
    opts = broker_options(args)
    device = _device(args)
    runner = EdgeRunner(device, opts, RunnerConfig(federation=args.federation, max_packet_bytes=args.max_packet_bytes,
                                                   max_rounds=args.rounds, threads=args.threads,
                                                   connect_attempts=args.connect_attempts,
                                                   resend_after=args.resend_after))
    runner.install_signal_handlers()
    return runner.run()


def run_once(args: argparse.Namespace) -> int:
    import time

    from fmfl.edge_client.local_training import LocalTrainConfig
    from fmfl.protocol import DEFAULT_CODEC, UpdateEncoder

    start = time.perf_counter()
    device = _device(args)
    ready = time.perf_counter() - start
    _, weights = device.global_model()
    before = device.evaluate(weights)
    lr = args.lr or float(device.manifest.optimizer["lr"])
    codec = args.codec or str(DEFAULT_CODEC)
    encoder = UpdateEncoder(codec, weights.size, device.tensor_sizes)
    # As a round would train, privatize and encode it (nothing is sent, and no DP release is recorded).
    result, _ = device.local_round(weights, LocalTrainConfig(batch_size=args.batch_size, lr=lr,
                                                             local_epochs=args.epochs), encoder)
    stats = result.stats
    after = device.evaluate(result.trained)
    local_dp = device.cfg.local_dp
    report = {
        "bundle": device.manifest.bundle_id,
        "train_samples": len(device.train_data),
        "eval_samples": len(device.eval_data),
        "feature_cache": device.cache_info["cache"],
        "prefix_seconds": round(device.cache_info["prefix_seconds"], 3),
        "setup_seconds": round(ready, 3),
        "steps": stats.steps,
        "train_seconds": round(stats.seconds, 3),
        "step_ms": round(1000 * stats.seconds / max(stats.steps, 1), 2),
        "train_loss": round(stats.mean_loss, 4),
        "before": {k: round(v, 4) for k, v in before.items()},
        "after": {k: round(v, 4) for k, v in after.items()},
        "codec": codec,
        "update_bytes": len(result.payload),
        "dense_fp32_bytes": 4 * result.delta.size,
    }
    if local_dp is not None:
        report["local_dp_epsilon_per_update"] = round(local_dp.epsilon(1), 4)
    print(json.dumps(report, indent=1))
    return 0

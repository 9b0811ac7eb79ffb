"""``fmfl demo``: the main job in one command. Only argparse at import time."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="federated fine-tuning end to end on this machine, with a report")
    p.add_argument("--task", default="vision", choices=("vision", "text", "multimodal"))
    p.add_argument("--clients", type=int, default=10, help="Python devices (default 10)")
    p.add_argument("--web-clients", type=int, default=0, metavar="N",
                   help="also N web devices: the web device's page in headless Chromium, one page each, joining "
                        "over the broker's WebSockets listener (needs scripts/install.sh web)")
    p.add_argument("--rounds", type=int, help="federated rounds (default: 200 for vision, 60 for text and multimodal)")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet label skew (smaller: more skewed)")
    p.add_argument("--codec", help="update codec or warm-up schedule (default: the task's; vision topk:0.05+sign+ef, "
                   "text the same after 5 rounds of top-k 20%% + sign + ef, multimodal top-k 1%% + int8 + error "
                   "feedback)")
    p.add_argument("--downlink-codec", help="codec of the global model's change sent down (default: top-k 10%% + "
                   "int8 + server error feedback; dense: every device gets the dense model; docs/protocol.md 2b)")
    p.add_argument("--strategy", default="fedavg")
    p.add_argument("--broker", help="use this broker (mqtt://host:port) instead of starting one")
    p.add_argument("--broker-kind", default="auto", choices=("auto", "mosquitto", "amqtt"),
                   help="which local broker to start (auto: mosquitto when installed, else embedded amqtt)")
    p.add_argument("--centralized", action="store_true", help="also train centrally on the pooled data")
    p.add_argument("--baselines", action="store_true",
                   help="also measure the baselines (classic model, linear probe, tuned centralized, local-only) "
                        "and each device's personalized accuracy, after the federated run")
    p.add_argument("--clients-per-round", type=int)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--round-timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", type=Path, default=Path("runs"))
    p.add_argument("--cache-dir", type=Path, default=Path(".fmfl-cache"))
    p.add_argument("--run-id")
    p.add_argument("--max-samples", type=int, help="use at most this many training samples (quick tries)")
    own = p.add_argument_group("your own data")
    own.add_argument("--data", type=Path, help="folder with train* and test* data in the edge client's formats")
    own.add_argument("--model", help="bundle model for --data (default: effnet-lite0 for images, minilm for text)")
    own.add_argument("--train", help="trainable set for --data (default: head for images, LoRA+head for text)")
    own.add_argument("--image-size", type=int, help="image size for --data (default 64)")
    dp = p.add_argument_group("differential privacy (docs/privacy.md)")
    dp.add_argument("--dp-noise-multiplier", type=float, metavar="Z",
                    help="run DP-FedAvg at the aggregator with this noise multiplier (needs --dp-clip)")
    dp.add_argument("--dp-clip", type=float, metavar="C", help="DP-FedAvg clip norm of each client's delta")
    dp.add_argument("--dp-adaptive-clip", action="store_true", help="DP-FedAvg: adapt C to the median norm")
    dp.add_argument("--local-dp-clip", type=float, metavar="C", help="local DP on every client: clip norm")
    dp.add_argument("--local-dp-noise-multiplier", type=float, metavar="Z", help="local DP: noise multiplier")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fmfl.demo.run import DemoConfig, run_demo

    cfg = DemoConfig(task=args.task, clients=args.clients, web_clients=args.web_clients,
                     rounds=args.rounds, alpha=args.alpha, codec=args.codec, downlink_codec=args.downlink_codec,
                     strategy=args.strategy, broker=args.broker, broker_kind=args.broker_kind,
                     centralized=args.centralized, baselines=args.baselines, clients_per_round=args.clients_per_round,
                     local_epochs=args.local_epochs, round_timeout=args.round_timeout, seed=args.seed,
                     runs_dir=args.runs_dir, cache_dir=args.cache_dir, run_id=args.run_id,
                     max_samples=args.max_samples, data=args.data, model=args.model, train=args.train,
                     image_size=args.image_size, dp_noise_multiplier=args.dp_noise_multiplier, dp_clip=args.dp_clip,
                     dp_adaptive_clip=args.dp_adaptive_clip, local_dp_clip=args.local_dp_clip,
                     local_dp_noise_multiplier=args.local_dp_noise_multiplier)
    run_demo(cfg)
    return 0

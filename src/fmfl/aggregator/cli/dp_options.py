"""``fmfl aggregator`` options of DP-FedAvg (``--strategy dp-fedavg``), turned into strategy options.

Only argparse at import time, like ``cli.py``. See docs/privacy.md for what each option means.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

DP_STRATEGIES = ("dp-fedavg", "dp_fedavg")


def add_dp_args(p: Any) -> None:
    """Add the ``--dp-*`` argument group to the ``fmfl aggregator`` parser ``p``."""
    d = p.add_argument_group("client-level differential privacy (--strategy dp-fedavg; docs/privacy.md)")
    d.add_argument("--dp-noise-multiplier", type=float, metavar="Z",
                   help="noise std / clip norm (z); the accountant's epsilon follows from it")
    d.add_argument("--dp-clip", type=float, metavar="C",
                   help="L2 norm each client's delta is clipped to (the initial one with --dp-adaptive-clip)")
    d.add_argument("--dp-fleet-size", type=int, metavar="N",
                   help="devices in the fleet: sampling rate q = clients invited per round / N")
    d.add_argument("--dp-delta", type=float, default=1e-5, help="delta of the reported epsilon (default 1e-5)")
    d.add_argument("--dp-accounting-sampling", choices=("poisson", "fixed-size"), default="poisson",
                   help="how the accountant models each round's participants (default poisson; see docs)")
    d.add_argument("--dp-adaptive-clip", action="store_true",
                   help="move the clip norm toward a quantile of the update norms (Andrew et al. 2021)")
    d.add_argument("--dp-target-quantile", type=float, default=0.5, help="adaptive: target quantile (0.5)")
    d.add_argument("--dp-clip-lr", type=float, default=0.2, help="adaptive: clip learning rate eta_C (0.2)")
    d.add_argument("--dp-clipped-count-stddev", type=float,
                   help="adaptive: noise std sigma_b of the unclipped count (default clients-per-round / 20)")


def dp_strategy_options(args: argparse.Namespace, clients_per_round: int, invited: int) -> dict[str, Any]:
    """DpFedAvg's keyword options from the ``--dp-*`` flags; raises ``FmflError`` naming the flag.

    ``clients_per_round`` (K) is the fixed denominator; ``invited`` (ceil(K * over-select)) over the
    fleet size is the sampling rate: the chance a given device is asked to take part in a round.
    """
    from fmfl.errors import FmflError

    given = [f"--{k.replace('_', '-')}" for k in ("dp_noise_multiplier", "dp_clip", "dp_fleet_size")
             if getattr(args, k) is not None]
    adaptive_given = args.dp_adaptive_clip or args.dp_clipped_count_stddev is not None
    if args.strategy not in DP_STRATEGIES:
        if given or adaptive_given:
            raise FmflError(f"{(given or ['--dp-adaptive-clip'])[0]} needs --strategy dp-fedavg")
        return {}
    for flag, value in (("--dp-noise-multiplier", args.dp_noise_multiplier), ("--dp-clip", args.dp_clip)):
        if value is None:
            raise FmflError(f"--strategy dp-fedavg needs {flag}")
        if not (math.isfinite(value) and value > 0):
            raise FmflError(f"{flag} must be a positive finite number, got {value!r}")
    fleet = args.dp_fleet_size
    if fleet is None:
        raise FmflError("--strategy dp-fedavg needs --dp-fleet-size (the number of devices, for the accountant)")
    if fleet < clients_per_round:
        raise FmflError(f"--dp-fleet-size {fleet} is smaller than --clients-per-round {clients_per_round}")
    if not 0 < args.dp_delta < 1:
        raise FmflError(f"--dp-delta must be in (0, 1), got {args.dp_delta!r}")
    if args.dp_clipped_count_stddev is not None and not args.dp_adaptive_clip:
        raise FmflError("--dp-clipped-count-stddev needs --dp-adaptive-clip")
    options: dict[str, Any] = {
        "noise_multiplier": args.dp_noise_multiplier,
        "clip_norm": args.dp_clip,
        "expected_clients": clients_per_round,
        "sampling_rate": min(invited, fleet) / fleet,
        "fleet_size": fleet,
        "delta": args.dp_delta,
        "accounting_sampling": args.dp_accounting_sampling,
    }
    if args.dp_adaptive_clip:
        options.update(adaptive_clip=True, target_quantile=args.dp_target_quantile, clip_learning_rate=args.dp_clip_lr)
        if args.dp_clipped_count_stddev is not None:
            options["clipped_count_stddev"] = args.dp_clipped_count_stddev
    return options

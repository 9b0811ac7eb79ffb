"""Staleness weighting for asynchronous (buffered) aggregation.

Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek, Huba, "Federated Learning with Buffered Asynchronous
Aggregation" (FedBuff), AISTATS 2022: an update computed against a global model ``s`` versions old
is scaled by ``1 / sqrt(1 + s)``. Here the scale multiplies the client's sample-count weight, so a
late update still counts, just less, in the next round's weighted mean.
"""

from __future__ import annotations

import math
import numbers


def staleness_weight(weight: float, staleness: int) -> float:
    """``weight / sqrt(1 + staleness)``; ``staleness`` = current version - the update's base version."""
    if isinstance(staleness, bool) or not isinstance(staleness, numbers.Integral) or staleness < 0:
        raise ValueError(f"staleness must be an integer >= 0, got {staleness!r}")
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"weight must be a positive finite number, got {weight!r}")
    return float(weight) / math.sqrt(1.0 + int(staleness))

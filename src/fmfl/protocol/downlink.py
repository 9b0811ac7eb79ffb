"""Downlink deltas (protocol 1.2, docs/protocol.md section 2b): what a device does with a GlobalModel.

A GlobalModel is either the dense weights of a version or, with ``base_version`` set, the change from that
version. Both sides compute a delta's result with the same float32 additions at the decoded indices, and
``weights_sha256`` lets the device prove the result is the gateway's version bit for bit; anything else is
refused and the device keeps the weights it held.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from fmfl.protocol.codec import SparseUpdate, decode_update
from fmfl.protocol.errors import ProtocolError, Reason
from fmfl.protocol.limits import Limits
from fmfl.protocol.messages import GlobalModel

Float32Array = npt.NDArray[np.float32]


def weights_sha256(weights: npt.NDArray[np.floating]) -> str:
    """The ``weights_sha256`` of a weight vector: SHA-256 of its float32 little-endian bytes, lowercase hex."""
    return hashlib.sha256(np.ascontiguousarray(weights, dtype="<f4").tobytes()).hexdigest()


def apply_sent(base: Float32Array, sent: SparseUpdate) -> Float32Array:
    """``base`` with ``w[i] = float32(w[i] + x)`` for each sent ``(i, x)``, as a new array (``base`` untouched).

    Only at the sent indices: adding the implicit zeros too would turn a ``-0.0`` weight into ``+0.0``.
    """
    weights = np.array(base, dtype=np.float32, copy=True)
    sent.add_to(weights)  # float32 += float32: one IEEE addition per index, as in every language
    return weights


def check_weights(weights: Float32Array, model: GlobalModel) -> None:
    """``hash_mismatch`` unless ``weights`` hash to the model's ``weights_sha256`` (when it carries one)."""
    if model.weights_sha256 is None:
        return
    got = weights_sha256(weights)
    if got != model.weights_sha256:
        origin = "dense" if model.base_version is None else f"the delta from v{model.base_version}"
        raise ProtocolError(
            Reason.HASH_MISMATCH,
            f"global v{model.model_version} from {origin} hashes to {got[:16]}..., "
            f"weights_sha256 says {model.weights_sha256[:16]}...",
        )


def dense_weights(model: GlobalModel, size: int, limits: Limits) -> Float32Array:
    """The weights a dense GlobalModel carries, checked against ``weights_sha256``."""
    if model.base_version is not None:
        raise ValueError(f"global v{model.model_version} is a delta from v{model.base_version}, not dense")
    weights = decode_update(model.payload, size, limits).to_dense()
    check_weights(weights, model)
    return weights


def apply_delta(base: Float32Array, model: GlobalModel, limits: Limits) -> Float32Array:
    """The weights of ``model.model_version`` from ``base`` (the weights of ``model.base_version``).

    Returns a new array; ``base`` is never modified. Raises ``ProtocolError`` when the payload does not decode
    for ``base.size`` (the decoder's reason) or the result does not hash to ``weights_sha256``
    (``hash_mismatch``: a wrong base, or a corrupted model on either side).
    """
    if model.base_version is None:
        raise ValueError(f"global v{model.model_version} is dense, not a delta")
    weights = apply_sent(base, decode_update(model.payload, int(base.size), limits))
    check_weights(weights, model)
    return weights

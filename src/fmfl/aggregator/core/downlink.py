"""The gateway's half of downlink deltas (docs/protocol.md section 2b): re-basing with server error feedback.

The delta that goes down is lossy (top-k, int8), so the gateway does not keep the model its aggregation
rule produced: the new version is the previous one plus exactly what the delta decodes to, added in
float32 at the sent indices (``fmfl.protocol.downlink.apply_sent``, the devices' own arithmetic). That
version is stored, evaluated, sent dense and trained from, so a device on deltas and a device that took
the dense copy hold the same bits. What the delta left out stays in a float64 residual and goes down with
later deltas: server-side error feedback (Seide et al. 2014; Karimireddy et al. 2019, "Error Feedback
Fixes SignSGD"; Tang et al. 2019, "DoubleSqueeze" for the server-to-worker direction).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fmfl.aggregation.sparse import Float32Array
from fmfl.errors import FmflError
from fmfl.protocol import CodecSpec, ProtocolError, UpdateEncoder
from fmfl.protocol.downlink import apply_sent, weights_sha256

DEFAULT_DOWNLINK_CODEC = "topk:0.1+int8+ef"
# Keys of the store's per-version server state (saved atomically with the version, beside the rule's state).
_RESIDUAL_KEY = "downlink_residual"
_PAYLOAD_KEY = "downlink_payload"


class DownlinkConfigError(FmflError):
    """A --downlink-codec the gateway cannot use."""


@dataclass(frozen=True)
class GlobalDelta:
    """The delta that turns version ``base_version`` into ``model_version`` (whose hash is ``weights_sha256``)."""

    base_version: int
    model_version: int
    payload: bytes
    weights_sha256: str


class DownlinkCompressor:
    """Turns the aggregation rule's new model into the version devices reconstruct from a delta.

    ``spec`` None or ``dense``: no deltas; versions are the rule's models unchanged.
    """

    def __init__(self, spec: str | None, size: int) -> None:
        parsed = CodecSpec.parse(spec) if spec else CodecSpec.parse("dense")
        self.enabled = str(parsed) != "dense"
        if parsed.needs_tensor_sizes:
            raise DownlinkConfigError(f"--downlink-codec {parsed}: per_tensor options are not supported downlink")
        self.spec = parsed
        self.error_feedback = parsed.error_feedback
        # The residual is kept here (saved with each version), so the encoder itself is stateless.
        self._encode_spec = dataclasses.replace(parsed, error_feedback=False)
        self.size = size
        self.residual = np.zeros(size, dtype=np.float64)
        self.delta: GlobalDelta | None = None  # the current version's delta, if it has one

    def rebase(self, base: Float32Array, base_version: int, candidate: Float32Array) -> Float32Array:
        """The weights of version ``base_version + 1``: ``base`` plus the decoded delta toward ``candidate``.

        Sets ``self.delta`` and advances the residual. Without deltas, returns ``candidate`` unchanged.
        """
        version = base_version + 1
        if not self.enabled:
            self.delta = None
            return candidate
        change = np.subtract(candidate, base, dtype=np.float64) + self.residual
        # A fresh encoder per version, seeded by it: stochastic rounding and random-k repeat on a resume.
        encoder = UpdateEncoder(self._encode_spec, self.size, seed=version)
        try:
            payload, sent = encoder.encode_sparse(change)
        except ProtocolError as exc:
            raise FmflError(f"global v{version}: the aggregated model is not finite ({exc})") from exc
        weights = apply_sent(base, sent)
        if self.error_feedback:
            change[sent.indices] -= sent.values
            self.residual = change
        self.delta = GlobalDelta(base_version, version, payload, weights_sha256(weights))
        return weights

    def forget(self) -> None:
        """The current version has no delta (a run's first version, or one adopted from a parent tier)."""
        self.delta = None

    # --- persistence, through the store's server state ----------------------------------------------

    def state_dict(self) -> dict[str, npt.NDArray[np.generic]]:
        if not self.enabled:
            return {}
        state: dict[str, npt.NDArray[np.generic]] = {_RESIDUAL_KEY: self.residual}
        if self.delta is not None:
            state[_PAYLOAD_KEY] = np.frombuffer(self.delta.payload, dtype=np.uint8)
        return state

    def load_state(
        self, state: dict[str, npt.NDArray[np.generic]], version: int, weights: Float32Array
    ) -> dict[str, npt.NDArray[np.generic]]:
        """Restore from the server state saved with ``version``; returns the rest (the rule's own state)."""
        rest = {k: v for k, v in state.items() if k not in (_RESIDUAL_KEY, _PAYLOAD_KEY)}
        self.delta = None
        if not self.enabled:
            return rest
        residual = state.get(_RESIDUAL_KEY)
        if residual is not None and residual.shape == (self.size,):
            self.residual = np.asarray(residual, dtype=np.float64).copy()
        payload = state.get(_PAYLOAD_KEY)
        if payload is not None:
            self.delta = GlobalDelta(
                version - 1, version, np.asarray(payload, dtype=np.uint8).tobytes(), weights_sha256(weights)
            )
        return rest

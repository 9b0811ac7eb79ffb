"""What an aggregator run does, round by round: the knobs of ``fmfl aggregator`` as one frozen value.

Checked where it is built, so a bad value fails at start-up with a message naming the option, not
half-way through round 7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fmfl.aggregator.core.downlink import DEFAULT_DOWNLINK_CODEC
from fmfl.aggregator.core.requirements import Requirement
from fmfl.errors import ConfigError
from fmfl.protocol import DEFAULT_CODEC, DEFAULT_MAX_PACKET_BYTES, CodecSpec, ProtocolError, check_id
from fmfl.protocol.chunking import MIN_PACKET_BYTES
from fmfl.protocol.codec.schedule import CodecSchedule


@dataclass(frozen=True, kw_only=True)
class RoundConfig:
    """Round protocol settings (see docs/aggregator.md for what each does)."""

    federation: str = "default"
    rounds: int
    clients_per_round: int
    min_clients: int
    round_timeout: float
    codec: str = str(DEFAULT_CODEC)
    batch_size: int = 16
    lr: float = 1e-3
    local_epochs: int | None = None
    local_steps: int | None = None
    over_select: float = 1.3
    seed: int = 0
    async_mode: bool = False
    max_staleness: int = 4
    start_timeout: float = 300.0
    selection_window: float = 5.0
    max_failed_rounds: int = 5
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES
    requirements: tuple[Requirement, ...] = field(default_factory=tuple)
    #: the codec of the global model's change sent to devices holding the previous version ("dense": none)
    downlink_codec: str = DEFAULT_DOWNLINK_CODEC

    def codec_for_round(self, round_: int) -> str:
        """The uplink codec the task of round ``round_`` names (``codec`` may be a ``CodecSchedule``)."""
        return CodecSchedule.parse(self.codec).codec_for_round(round_)

    def __post_init__(self) -> None:
        try:
            check_id(self.federation, "federation")
            CodecSchedule.parse(self.codec)  # a codec, or a density warm-up schedule ending in one
            if CodecSpec.parse(self.downlink_codec).needs_tensor_sizes:
                raise ConfigError(f"downlink_codec {self.downlink_codec!r}: per_tensor options are not supported")
        except (ProtocolError, ValueError) as exc:
            raise ConfigError(str(exc)) from exc
        _positive_int("rounds", self.rounds)
        _positive_int("clients_per_round", self.clients_per_round)
        _positive_int("min_clients", self.min_clients)
        if self.min_clients > self.clients_per_round:
            raise ConfigError(
                f"min_clients ({self.min_clients}) cannot exceed clients_per_round ({self.clients_per_round})"
            )
        _positive_float("round_timeout", self.round_timeout)
        _positive_float("start_timeout", self.start_timeout)
        if not (math.isfinite(self.selection_window) and self.selection_window >= 0):
            raise ConfigError(f"selection_window must be >= 0 seconds, got {self.selection_window!r}")
        _positive_int("batch_size", self.batch_size)
        _positive_float("lr", self.lr)
        if (self.local_epochs is None) == (self.local_steps is None):
            raise ConfigError("set exactly one of local_epochs and local_steps")
        _positive_int("local_epochs/local_steps", self.local_epochs or self.local_steps or 0)
        if not (math.isfinite(self.over_select) and self.over_select >= 1.0):
            raise ConfigError(f"over_select must be >= 1, got {self.over_select}")
        if not 0 <= self.seed < 2**53:
            raise ConfigError(f"seed must be in [0, 2**53), got {self.seed}")
        if self.max_staleness < 0:
            raise ConfigError(f"max_staleness must be >= 0, got {self.max_staleness}")
        _positive_int("max_failed_rounds", self.max_failed_rounds)
        if self.max_packet_bytes < MIN_PACKET_BYTES:
            raise ConfigError(f"max_packet_bytes must be >= {MIN_PACKET_BYTES}, got {self.max_packet_bytes}")

    @property
    def selection_size(self) -> int:
        """How many clients a round invites: ``ceil(K * over_select)``; K accepted updates close it."""
        return math.ceil(self.clients_per_round * self.over_select - 1e-9)

    def task_seed(self, round: int) -> int:
        """The seed told to clients in round ``round``: a fixed function of ``seed`` and the round."""
        return (self.seed * 1_000_003 + round) % 2**53


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _positive_float(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")

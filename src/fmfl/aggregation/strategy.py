"""The small abstract ``Strategy`` every aggregation rule implements.

A round is a template method (as in Flower's strategies): ``begin_round(global)`` opens it,
``accept(update, weight, client_id)`` validates and folds in one client's sparse delta (or raises
``RejectedUpdate`` having changed nothing), and ``aggregate()`` closes it and returns the new global
weights, ``global + step``. ``accept`` is ``add(check(...))``: the gateway logs the checked update to its
write-ahead log between the two, and ``add`` trusts the ``CheckedUpdate`` token instead of validating again.
Subclasses supply only the hooks: how to hold a round's updates, how to
combine them into one delta, and (for server optimizers) how to turn that delta into a step.

Two kinds of state, persisted differently:
- the open round (``round_bytes``/``merge_round``): rebuilt after a crash by replaying the
  write-ahead log, and exchanged between workers or tiers as a partial aggregate;
- the server state across rounds (``state_dict``/``load_state_dict``: momentum, moments, round
  counter), saved with each global version so a restart resumes bit for bit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from fmfl.aggregation.sparse import Float32Array, Float64Array, SparseVector
from fmfl.aggregation.state_file import CorruptState, dump_arrays, load_arrays
from fmfl.aggregation.validation import (
    RejectedUpdate,
    RejectReason,
    UpdateLimits,
    ValidUpdate,
    validate_update,
)
from fmfl.errors import FmflError

StateDict = dict[str, npt.NDArray[np.generic]]

_ROUND_KIND = "round-partial-v1"


class RoundStateError(FmflError):
    """A call out of order: accept before ``begin_round``, aggregate twice or with no updates."""


@dataclass(frozen=True)
class CheckedUpdate:
    """An update that passed ``Strategy.check`` in one open round of one strategy: ``Strategy.add`` folds it
    in without running the O(nnz) validation again. Only ``check`` makes one (the round it was checked in is
    part of the token, so a token cannot outlive its round)."""

    valid: ValidUpdate
    strategy: Strategy = field(repr=False, compare=False)
    round_epoch: int

    @property
    def indices(self) -> npt.NDArray[np.int64]:
        return self.valid.indices

    @property
    def values(self) -> Float32Array:
        return self.valid.values

    @property
    def weight(self) -> float:
        return self.valid.weight

    @property
    def client_id(self) -> str:
        return self.valid.client_id


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_unit_interval(name: str, value: float) -> float:
    """For decay rates: in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


class Strategy(ABC):
    """An aggregation rule over sparse client deltas; see the module docstring for the round shape."""

    name: ClassVar[str]
    # False: the rule cannot split a round across workers or tiers (``round_bytes``/``merge_round``).
    supports_partial_rounds: ClassVar[bool] = True

    def __init__(self, *, server_lr: float = 1.0, limits: UpdateLimits | None = None) -> None:
        self.server_lr = check_positive("server_lr", server_lr)
        self.limits = limits or UpdateLimits()
        self._global: Float32Array | None = None
        self._clients: set[str] = set()
        self._open = False
        self._round_epoch = 0  # one per begin_round: a CheckedUpdate is valid in its round only
        self.rounds = 0

    # --- round lifecycle -------------------------------------------------------------------------

    def begin_round(self, global_weights: npt.ArrayLike) -> None:
        """Open a round on the flat trainable weights ``global_weights`` (any float array, 1-D)."""
        g = np.asarray(global_weights)
        if g.ndim != 1 or g.shape[0] == 0 or g.dtype.kind != "f":
            raise ValueError(f"global weights must be a non-empty 1-D float array, got {g.dtype} {g.shape}")
        g32 = np.array(g, dtype=np.float32, copy=True)
        if not bool(np.isfinite(g32).all()):
            raise ValueError("global weights contain NaN or infinity")
        self._check_state_size(g32.shape[0])
        self._global = g32
        self._clients = set()
        self._open_round(g32.shape[0])
        self._round_epoch += 1
        self._open = True

    @property
    def size(self) -> int:
        if self._global is None:
            raise RoundStateError("no round begun yet")
        return int(self._global.shape[0])

    @property
    def round_open(self) -> bool:
        return self._open

    @property
    def clients(self) -> frozenset[str]:
        """Clients whose update this round holds."""
        return frozenset(self._clients)

    @property
    def client_count(self) -> int:
        """``len(clients)`` without the copy: the gateway asks after every accepted update."""
        return len(self._clients)

    def check(self, update: SparseVector, weight: float, client_id: str) -> CheckedUpdate:
        """Validate without changing anything: run it before logging, then ``add`` the token it returns."""
        self._require_open()
        valid = validate_update(
            update, weight, client_id, size=self.size, seen_clients=self._clients, limits=self.limits
        )
        self._check_capacity(valid)
        return CheckedUpdate(valid, self, self._round_epoch)

    def add(self, checked: CheckedUpdate) -> ValidUpdate:
        """Fold in an update ``check`` passed in this open round; nothing is validated twice."""
        self._require_open()
        if checked.strategy is not self or checked.round_epoch != self._round_epoch:
            raise RoundStateError("this update was checked by another strategy or in another round: check it again")
        if checked.client_id in self._clients:  # the same token twice (O(1); the token is otherwise trusted)
            raise RejectedUpdate(RejectReason.DUPLICATE_CLIENT, f"client {checked.client_id!r} already added")
        self._add(checked.valid)
        self._clients.add(checked.client_id)
        return checked.valid

    def accept(self, update: SparseVector, weight: float, client_id: str) -> ValidUpdate:
        """Validate and fold in one client's delta; on ``RejectedUpdate`` nothing has changed."""
        return self.add(self.check(update, weight, client_id))

    def aggregate(self) -> Float32Array:
        """Close the round and return the new global weights (float32) = global + server step."""
        self._require_open()
        if not self._clients:
            raise RoundStateError("no update was accepted this round; nothing to aggregate")
        assert self._global is not None
        delta = self._aggregate_delta()
        new = self._server_step(self._global, delta)
        self._open = False
        self.rounds += 1
        out: Float32Array = new.astype(np.float32)
        return out

    # --- partial rounds: several workers, tiers --------------------------------------------------

    def round_bytes(self) -> bytes:
        """This round's accepted contributions as npz bytes (for a parent tier or a merging worker)."""
        self._require_open()
        return dump_arrays(
            {
                "kind": _ROUND_KIND,
                "size": np.int64(self.size),
                "clients": np.array(sorted(self._clients), dtype=np.str_),
                "payload": np.frombuffer(self._partial_bytes(), dtype=np.uint8),
            }
        )

    def merge_round(self, data: bytes) -> None:
        """Fold in another worker's ``round_bytes`` of the same round; all-or-nothing."""
        self._require_open()
        a = load_arrays(data, kind=_ROUND_KIND, required=("size", "clients", "payload"))
        if int(a["size"]) != self.size:
            raise CorruptState(f"partial round of size {int(a['size'])} != model size {self.size}")
        clients = {str(c) for c in a["clients"].tolist()}
        overlap = clients & self._clients
        if overlap:
            raise RejectedUpdate(RejectReason.DUPLICATE_CLIENT, f"partial round repeats clients {sorted(overlap)[:5]}")
        self._merge_partial(a["payload"].tobytes(), frozenset(clients))
        self._clients |= clients

    # --- server state ----------------------------------------------------------------------------

    def state_dict(self) -> StateDict:
        """Server state that outlives a round, as arrays (save it next to each global version)."""
        state: StateDict = {"rounds": np.array(self.rounds, dtype=np.int64)}
        state.update(self._server_state())
        return state

    def load_state_dict(self, state: Mapping[str, npt.NDArray[np.generic]]) -> None:
        """Restore ``state_dict()`` output; the next ``begin_round`` checks sizes match."""
        expected = set(self.state_dict())
        if set(state) != expected:
            raise CorruptState(f"{self.name} state needs keys {sorted(expected)}, got {sorted(state)}")
        self._load_server_state({k: np.asarray(v) for k, v in state.items() if k != "rounds"})
        self.rounds = int(state["rounds"])

    def round_metrics(self) -> dict[str, float]:
        """Rule-specific numbers for the round's metrics line (e.g. DP-FedAvg's epsilon); none by default."""
        return {}

    # --- hooks -----------------------------------------------------------------------------------

    @abstractmethod
    def _open_round(self, size: int) -> None:
        """Reset the per-round container for vectors of ``size``."""

    @abstractmethod
    def _add(self, update: ValidUpdate) -> None:
        """Fold in a validated update (must not fail after ``_check_capacity`` passed)."""

    @abstractmethod
    def _aggregate_delta(self) -> Float64Array:
        """Combine the round's deltas into one dense float64 delta."""

    @abstractmethod
    def _partial_bytes(self) -> bytes: ...

    @abstractmethod
    def _merge_partial(self, payload: bytes, clients: frozenset[str]) -> None:
        """Merge a payload from ``_partial_bytes``; raise before changing anything if it cannot."""

    def _check_capacity(self, update: ValidUpdate) -> None:  # noqa: B027 - optional hook
        """Raise ``RejectedUpdate(CAPACITY)`` if ``update`` would not fit; streaming rules always fit."""

    def _server_step(self, global32: Float32Array, delta: Float64Array) -> Float64Array:
        """The new global in float64; may overwrite ``delta`` (a scratch buffer of the round)."""
        if self.server_lr != 1.0:
            delta *= self.server_lr
        delta += global32  # in place, float32 widened exactly: no 16 MB temporaries per round
        return delta

    def _server_state(self) -> StateDict:
        return {}

    def _load_server_state(self, state: StateDict) -> None:
        return None

    def _check_state_size(self, size: int) -> None:  # noqa: B027 - optional hook
        """Raise if loaded server state belongs to a model of another size."""

    def _require_open(self) -> None:
        if not self._open:
            raise RoundStateError("no open round: call begin_round(global_weights) first")

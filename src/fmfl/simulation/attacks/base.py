"""The seam every simulated attack implements: poison the local labels, or replace the sent updates, or both.

Two kinds of attacker are modelled (the taxonomy of Fang et al. 2020, "Local Model Poisoning Attacks to
Byzantine-Robust Federated Learning", USENIX Security):

- data poisoning: the malicious device trains honestly, on labels it has corrupted (``poison_labels``);
- model poisoning: the malicious device sends an update of its choosing (``craft``), computed from its own
  honest update or, for colluding omniscient attackers, from every client's honest update of the round.

An attack never sees the test set or the aggregation rule's internals.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]


class Attack(ABC):  # noqa: B024 - every hook has an honest default; subclasses override one or both
    """An attack on a federated round; the base class is the honest behaviour."""

    name: ClassVar[str] = "none"
    #: True when ``poison_labels`` changes anything (the harness then trains malicious clients on a copy)
    poisons_data: ClassVar[bool] = False

    def poison_labels(self, labels: LabelArray, num_classes: int) -> LabelArray:
        """The labels a malicious client trains on (default: its true labels)."""
        return labels

    def craft(self, honest: Mapping[str, Float32Array], malicious: Sequence[str]) -> dict[str, Float32Array]:
        """The deltas the ``malicious`` clients send, given every client's honestly trained delta.

        ``honest`` holds all clients of the round (benign and malicious); the default sends the honest ones.
        """
        return {c: honest[c] for c in malicious}

    def describe(self) -> str:
        """A short human description for reports."""
        return self.name


class NoAttack(Attack):
    """Every client is honest (the baseline row)."""

    name: ClassVar[str] = "none"


def benign_stack(honest: Mapping[str, Float32Array], malicious: Sequence[str]) -> npt.NDArray[np.float64]:
    """The benign clients' deltas as a ``(k, size)`` float64 array, in client-id order."""
    bad = set(malicious)
    rows = [honest[c] for c in sorted(honest) if c not in bad]
    if not rows:
        raise ValueError("every client of the round is malicious: no benign update to work from")
    return np.stack(rows).astype(np.float64)

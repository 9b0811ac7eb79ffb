"""A per-round uplink codec: density warm-up, then the steady codec.

Lin, Han, Mao, Wang, Dally, "Deep Gradient Compression: Reducing the Communication Bandwidth for Distributed
Training", ICLR 2018, section 3.3 ("warm-up training"): sparsify gently while the model changes fast in the
first rounds, then tighten. With top-k 1% a coordinate is sent about once every 100 rounds, so the early,
large updates of a fresh head wait in the error-feedback residual for many rounds and arrive stale (the
compressed runs' slow start and swings, docs/results.md); a few denser rounds first let the model move.

Spec: ``"CODEC@ROUNDS,CODEC@ROUNDS,...,CODEC"``: each ``CODEC@N`` is used for the next ``N`` rounds, the last
codec (no ``@``) for every later round; e.g. ``"topk:0.1+int8+ef@5,topk:0.01+int8+ef"``. A plain codec string
is a schedule of one. Each device builds its encoder from the round task's codec and keeps its error-feedback
residual across codec changes (the residual is a dense vector whatever the sparsifier), so devices need no
change.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmfl.protocol.codec.spec import CodecSpec
from fmfl.protocol.errors import ProtocolError


@dataclass(frozen=True)
class CodecSchedule:
    """``phases``: ``(codec, rounds)`` pairs used in order, then ``steady`` from the round after them on."""

    phases: tuple[tuple[str, int], ...]
    steady: str

    @classmethod
    def parse(cls, text: str) -> CodecSchedule:
        """Parse ``"CODEC@ROUNDS,...,CODEC"``; raises ``ValueError`` naming the bad part."""
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
        # A codec spec itself may contain "," (e.g. "topk:0.01,per_tensor"): re-join pieces without a stage start.
        merged: list[str] = []
        for part in parts:
            if merged and "@" not in merged[-1] and not _starts_stage(part):
                merged[-1] += "," + part
            else:
                merged.append(part)
        if not merged or "@" in merged[-1]:
            raise ValueError(f"codec schedule {text!r}: it must end with the steady codec (no @ROUNDS)")
        phases = []
        for part in merged[:-1]:
            codec, sep, rounds = part.rpartition("@")
            if not sep or not rounds.isdigit() or int(rounds) < 1:
                raise ValueError(f"codec schedule {text!r}: {part!r} is not CODEC@ROUNDS with ROUNDS >= 1")
            phases.append((_canonical(codec, text), int(rounds)))
        return cls(tuple(phases), _canonical(merged[-1], text))

    def codec_for_round(self, round_: int) -> str:
        """The codec of round ``round_`` (rounds count from 1)."""
        if round_ < 1:
            raise ValueError(f"rounds count from 1, got {round_}")
        end = 0
        for codec, rounds in self.phases:
            end += rounds
            if round_ <= end:
                return codec
        return self.steady

    def __str__(self) -> str:
        return ",".join([*(f"{c}@{n}" for c, n in self.phases), self.steady])


def _starts_stage(part: str) -> bool:
    head = part.split(":", 1)[0].split("+", 1)[0].split("@", 1)[0]
    return head in {"dense", "fp32", "fp16", "topk", "randk", "int8", "int4", "sign", "ef", "zstd"}


def _canonical(codec: str, text: str) -> str:
    try:
        return str(CodecSpec.parse(codec))
    except ProtocolError as exc:
        raise ValueError(f"codec schedule {text!r}: {exc}") from exc

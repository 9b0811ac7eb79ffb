"""UpdateEncoder: runs one codec chain (sparsify, quantize, error feedback, index coding, zstd) on updates."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fmfl.protocol.codec import compression
from fmfl.protocol.codec.base import FloatArray, IndexArray, Sparsifier, ValueCoder
from fmfl.protocol.codec.dense import Float16Coder, Float32Coder
from fmfl.protocol.codec.error_feedback import ErrorFeedback
from fmfl.protocol.codec.groups import block_counts, tensor_counts
from fmfl.protocol.codec.index_coding import IndexCoding, encode_indices, encode_seeded
from fmfl.protocol.codec.linear_quant import LinearQuantizer
from fmfl.protocol.codec.payload import (
    BODY_HEADER,
    FLAG_ZSTD,
    PAYLOAD_FORMAT,
    PREFIX,
    RAW_LENGTH,
    U32,
    GroupMode,
)
from fmfl.protocol.codec.randk import RandKSparsifier, derive_seed
from fmfl.protocol.codec.sign import SignQuantizer
from fmfl.protocol.codec.sparse import SparseUpdate
from fmfl.protocol.codec.spec import CodecSpec, Sparsification, Values
from fmfl.protocol.codec.topk import TopKSparsifier
from fmfl.protocol.errors import ProtocolError, Reason
from fmfl.protocol.limits import MAX_VECTOR_SIZE

QUANTIZER_CLIP = 1e38


def _value_coder(spec: CodecSpec) -> ValueCoder:
    if spec.values == Values.FP32:
        return Float32Coder()
    if spec.values == Values.FP16:
        return Float16Coder()
    if spec.values == Values.SIGN:
        return SignQuantizer(stochastic=spec.stochastic)
    return LinearQuantizer(8 if spec.values == Values.INT8 else 4, stochastic=spec.stochastic)


def _sparsifier(spec: CodecSpec, size: int, tensor_sizes: Sequence[int] | None) -> Sparsifier | None:
    if spec.sparsification == Sparsification.TOPK:
        return TopKSparsifier(
            size,
            fraction=spec.fraction,
            count=spec.count,
            tensor_sizes=tensor_sizes if spec.per_tensor_k else None,
        )
    if spec.sparsification == Sparsification.RANDK:
        return RandKSparsifier(size, fraction=spec.fraction, count=spec.count)
    return None


class UpdateEncoder:
    """Encodes float32 update vectors of one fixed ``size`` with one codec chain.

    With ``ef`` in the spec the encoder keeps the error-feedback residual between calls; persist it with
    :meth:`save_residual` / :meth:`load_residual` so a restarted client loses nothing. ``tensor_sizes`` (the
    manifest's trainable tensors, in flat order) is needed for ``per_tensor`` options. ``seed`` seeds
    stochastic rounding and, unless :meth:`encode` is given one, the per-call random-k seeds.
    """

    def __init__(
        self,
        spec: CodecSpec | str,
        size: int,
        tensor_sizes: Sequence[int] | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.spec = CodecSpec.parse(spec) if isinstance(spec, str) else spec
        if not 1 <= size <= MAX_VECTOR_SIZE:
            raise ValueError(f"size must be in [1, {MAX_VECTOR_SIZE}], got {size}")
        if tensor_sizes is not None:
            tensor_sizes = [int(n) for n in tensor_sizes]
            if any(n < 1 for n in tensor_sizes) or sum(tensor_sizes) != size:
                raise ValueError(f"tensor_sizes must be positive and sum to size {size}")
        if self.spec.needs_tensor_sizes and tensor_sizes is None:
            raise ValueError(f"codec {self.spec} has a per_tensor option: pass tensor_sizes")
        self.size = size
        self.tensor_sizes = tensor_sizes
        self._seed = seed
        self._calls = 0
        self._rng = np.random.default_rng(seed)
        self._sparsifier = _sparsifier(self.spec, size, tensor_sizes)
        self._coder = _value_coder(self.spec)
        self._feedback = ErrorFeedback(size) if self.spec.error_feedback else None

    @property
    def residual(self) -> FloatArray:
        """The error-feedback residual (read-only float64; zeros when the spec has no ``ef``)."""
        if self._feedback is None:
            return np.zeros(self.size, dtype=np.float64)
        return self._feedback.residual

    def save_residual(self, path: str | os.PathLike[str]) -> None:
        """Write the residual to ``path`` as ``.npy`` (atomic replace)."""
        (self._feedback or ErrorFeedback(self.size)).save(path)

    def load_residual(self, path: str | os.PathLike[str]) -> None:
        """Restore a residual written by :meth:`save_residual` (ignored when the spec has no ``ef``)."""
        if self._feedback is not None:
            self._feedback.load(path)

    def restore_residual(self, residual: npt.NDArray[np.floating]) -> None:
        """Continue from a residual held in memory (ignored when the spec has no ``ef``)."""
        if self._feedback is not None:
            self._feedback.restore(residual)

    def encode(self, delta: npt.NDArray[np.floating], *, seed: int | None = None) -> bytes:
        """The payload for ``delta`` (``size`` finite floats); updates the residual."""
        return self.encode_sparse(delta, seed=seed)[0]

    def encode_sparse(
        self, delta: npt.NDArray[np.floating], *, seed: int | None = None
    ) -> tuple[bytes, SparseUpdate]:
        """The payload and the :class:`SparseUpdate` a decoder will get from it (bit for bit)."""
        if delta.shape != (self.size,):
            raise ValueError(f"update shape {delta.shape} != ({self.size},)")
        if not np.isfinite(delta).all():
            raise ProtocolError(Reason.NON_FINITE, "the update holds NaN or infinity; nothing was encoded")
        seeded = self._sparsifier is not None and self._sparsifier.seeded
        if seed is not None:
            round_seed = seed & ((1 << 64) - 1)
        else:
            round_seed = derive_seed(self._seed, self._calls) if seeded else 0
        self._calls += 1
        if self._feedback is not None:
            compensated = self._feedback.compensate(delta)
        else:
            compensated = delta.astype(np.float64)

        indices: IndexArray | None = None
        chosen = compensated
        if self._sparsifier is not None:
            indices = self._sparsifier.select(compensated, round_seed)
            if indices.size < self.size:
                chosen = compensated[indices]
            else:
                indices = None
        nnz = self.size if indices is None else int(indices.size)

        group_mode, group_section, counts = self._groups(indices, nnz)
        if self._coder.grouped:
            # Keeps q * scale finite in float32; error feedback carries anything beyond (never in practice).
            chosen = np.clip(chosen, -QUANTIZER_CLIP, QUANTIZER_CLIP)
        with np.errstate(all="ignore"):  # clipping and zero scales are handled explicitly
            scale_bytes, value_bytes, decoded = self._coder.encode(chosen, counts, self._rng)

        if seeded:
            index_coding, index_bytes = encode_seeded(round_seed)
        elif indices is None:
            index_coding, index_bytes = IndexCoding.ALL, b""
        else:
            index_coding, index_bytes = encode_indices(indices, self.size)

        body = b"".join(
            (
                BODY_HEADER.pack(
                    self.size, nnz, index_coding, self._coder.code, group_mode, 0, len(index_bytes)
                ),
                index_bytes,
                group_section,
                scale_bytes,
                value_bytes,
            )
        )
        if self.spec.zstd_level is not None:
            payload = b"".join(
                (
                    PREFIX.pack(PAYLOAD_FORMAT, FLAG_ZSTD),
                    RAW_LENGTH.pack(len(body)),
                    compression.compress(body, self.spec.zstd_level),
                )
            )
        else:
            payload = PREFIX.pack(PAYLOAD_FORMAT, 0) + body

        if self._feedback is not None:
            self._feedback.keep(compensated, indices, decoded)
        sent_indices = np.arange(self.size, dtype=np.int64) if indices is None else indices
        sent = SparseUpdate(indices=sent_indices, values=decoded, size=self.size)
        return payload, sent

    def _groups(self, indices: IndexArray | None, nnz: int) -> tuple[GroupMode, bytes, npt.NDArray[np.int64]]:
        if not self._coder.grouped:
            return GroupMode.NONE, b"", np.zeros(0, dtype=np.int64)
        if self.spec.block is not None:
            return GroupMode.BLOCK, U32.pack(self.spec.block), block_counts(nnz, self.spec.block)
        assert self.tensor_sizes is not None  # checked in __init__
        if indices is None:
            counts = np.asarray(self.tensor_sizes, dtype=np.int64)
        else:
            counts = tensor_counts(indices, self.tensor_sizes)
        section = U32.pack(counts.size) + counts.astype("<u4").tobytes()
        return GroupMode.EXPLICIT, section, counts


__all__ = ["UpdateEncoder"]

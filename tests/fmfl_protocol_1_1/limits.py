"""Bounds that every decoder enforces before it allocates, derived from the bundle manifest.

The gateway decodes bytes from untrusted devices. Every length in a message is checked against these bounds
before memory is reserved for it, so the worst case of any input is ``O(max_vector_size)`` memory.
"""

from __future__ import annotations

from dataclasses import dataclass

# Sparse indices are cumulated in int64; keeping sizes below 2**31 keeps nnz * size below 2**62 (no overflow).
MAX_VECTOR_SIZE = 2**31 - 1
# The worst legal payload per float: 4 value bytes + 5 varint bytes, or 1 + 5 + 8 with one-value groups.
_PAYLOAD_BYTES_PER_FLOAT = 16
_PAYLOAD_SLACK = 4096


def max_payload_bytes(vector_size: int) -> int:
    """The largest update payload a sender may produce for a vector of ``vector_size`` floats."""
    return _PAYLOAD_BYTES_PER_FLOAT * vector_size + _PAYLOAD_SLACK


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Decode bounds. Build them from the manifest with :meth:`for_vector_size`.

    Attributes:
        max_vector_size: the number of trainable floats in the bundle (the manifest's flat trainable size).
        max_message_bytes: the largest whole (reassembled) message accepted.
        max_metadata_bytes: the largest JSON metadata block accepted inside a message.
        max_string_bytes: the longest string field (bundle id, codec spec, ack reason, capability value).
        max_items: the most entries in a list or map field (selected clients, metrics, capabilities).
    """

    max_vector_size: int
    max_message_bytes: int
    max_metadata_bytes: int = 256 * 1024
    max_string_bytes: int = 256
    max_items: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.max_vector_size <= MAX_VECTOR_SIZE:
            raise ValueError(f"max_vector_size must be in [1, {MAX_VECTOR_SIZE}], got {self.max_vector_size}")
        for name in ("max_message_bytes", "max_metadata_bytes", "max_string_bytes", "max_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def for_vector_size(
        cls,
        vector_size: int,
        *,
        max_metadata_bytes: int = 256 * 1024,
        max_string_bytes: int = 256,
        max_items: int = 10_000,
    ) -> Limits:
        """Limits for a bundle of ``vector_size`` trainable floats: messages up to the worst legal payload."""
        return cls(
            max_vector_size=vector_size,
            max_message_bytes=max_payload_bytes(vector_size) + max_metadata_bytes + 64,
            max_metadata_bytes=max_metadata_bytes,
            max_string_bytes=max_string_bytes,
            max_items=max_items,
        )

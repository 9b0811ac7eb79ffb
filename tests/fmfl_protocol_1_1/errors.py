"""The one exception the protocol raises for bad input, with a machine-readable reason.

Every decoder in :mod:`fmfl_protocol_1_1` turns any malformed input into a :class:`ProtocolError`; any other
exception escaping a decoder is a bug (the fuzzers in ``benchmarks/fuzz_protocol.py`` look for exactly that).
"""

from __future__ import annotations

from fmfl.compat import StrEnum
from fmfl.errors import FmflError


class Reason(StrEnum):
    """Why input was rejected. A ``StrEnum``, so ``err.reason == "checksum"`` holds."""

    TOO_LARGE = "too_large"  # a length (message, metadata, vector, decompressed body) exceeds Limits
    TRUNCATED = "truncated"  # the input ends before a declared field or section does
    TRAILING_BYTES = "trailing_bytes"  # bytes left over after the last declared section
    BAD_MAGIC = "bad_magic"  # not an fmfl message / chunk / payload
    VERSION = "version"  # unsupported major version (or payload format)
    CHECKSUM = "checksum"  # CRC-32 of a message or chunk does not match
    HASH_MISMATCH = "hash_mismatch"  # SHA-256 of a reassembled message does not match
    UNKNOWN_TYPE = "unknown_type"  # message type or codec enum value this version does not know
    WRONG_TYPE = "wrong_type"  # a valid message of another type than the one asked for
    BAD_METADATA = "bad_metadata"  # metadata JSON malformed, or a field missing / of the wrong type / range
    INVALID_ID = "invalid_id"  # a client id, federation, prefix or update id that breaks the id rules
    NON_FINITE = "non_finite"  # NaN or infinity in values, scales, metrics or numeric fields
    INDEX_OUT_OF_RANGE = "index_out_of_range"  # a sparse index >= the vector size
    SIZE_MISMATCH = "size_mismatch"  # the payload's vector size is not the one expected
    MALFORMED = "malformed"  # a payload section that is internally inconsistent
    DECOMPRESSION = "decompression"  # the zstd frame is corrupt, incomplete or breaks the frame rules
    BAD_CODEC_SPEC = "bad_codec_spec"  # a codec spec string that the grammar rejects
    CHUNK_MISMATCH = "chunk_mismatch"  # chunks of one message id disagree with each other
    RESIDUAL_MISMATCH = "residual_mismatch"  # a saved error-feedback residual of the wrong shape or dtype


class ProtocolError(FmflError):
    """Input that breaks the fmfl wire protocol.

    ``reason`` is a short machine-readable :class:`Reason` (compare it with plain strings); the message says
    what was wrong in words.
    """

    def __init__(self, reason: Reason | str, message: str) -> None:
        self.reason = Reason(reason)
        super().__init__(f"{self.reason.value}: {message}")

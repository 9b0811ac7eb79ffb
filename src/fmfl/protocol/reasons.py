"""Why an update (or any input) was refused: the one vocabulary of Ack reasons, metric labels and error codes.

Every negative Ack's ``reason`` is a member of :class:`AckReason`, whoever refused the update: the protocol's
decoders (``ProtocolError.reason``), the gateway's round checks, its validation of the decoded delta, or the
signed-update check. The same values label the gateway's rejection counters (``metrics.jsonl``,
``fmfl_updates_rejected_total``). docs/protocol.md section 8 lists every member and what a device does next;
a test holds the two together.

The values are wire strings and stay as they are. One is kebab-case, ``duplicate-client``, for the devices
that already match it. Earlier gateways (fmfl 0.1.0) also sent ``non-finite`` from their validation; it is now
``non_finite``, the protocol's spelling (a device drops a refused update whatever its reason, so no device
depends on the old one).
"""

from __future__ import annotations

from fmfl.compat import StrEnum


class AckReason(StrEnum):
    """Why an update was refused. A ``StrEnum``: ``reason == "checksum"`` holds and the value is the wire string."""

    # The input breaks the wire protocol: raised by fmfl.protocol's decoders as ProtocolError.reason.
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
    RESIDUAL_MISMATCH = "residual_mismatch"  # (local) a saved error-feedback residual of the wrong shape or dtype

    # The gateway's checks of a well-formed update against its run and round (fmfl.aggregator.core.ingest).
    CLIENT_MISMATCH = "client_mismatch"  # the metadata's client_id is not the topic's
    WRONG_RUN = "wrong_run"  # (1.2) the update names another run
    WRONG_FEDERATION = "wrong_federation"
    WRONG_BUNDLE = "wrong_bundle"
    NO_OPEN_ROUND = "no_open_round"
    WRONG_ROUND = "wrong_round"  # a round that is not open yet
    STALE_ROUND = "stale_round"  # the round is over (or failed its quorum)
    WRONG_VERSION = "wrong_version"  # trained from another global model version than the round's
    NOT_SELECTED = "not_selected"
    UNKNOWN_CLIENT = "unknown_client"  # not selected, and the gateway never saw its hello
    TOO_STALE = "too_stale"  # (async) more versions behind than --max-staleness
    DUPLICATE_CLIENT = "duplicate-client"  # another update of this device counts this round (kebab: see above)
    REPLAYED_NONCE = "replayed_nonce"  # a nonce already accepted with another update

    # The gateway's validation of the decoded delta (fmfl.aggregation.validation; also non_finite, size_mismatch,
    # invalid_id above). shape, dtype and indices cannot come from a delta that decoded: they guard in-process
    # callers (the simulation, a strategy fed directly).
    WEIGHT = "weight"  # num_samples < 1, not finite, or above the bound
    NORM = "norm"  # L2 norm above --max-norm
    CAPACITY = "capacity"  # a robust rule's buffer is full
    SHAPE = "shape"
    DTYPE = "dtype"
    INDICES = "indices"  # unsorted or repeated indices

    # Signed updates (fmfl.trust.update_signing, docs/security.md).
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    # The gateway cannot read its device registry: its own fault, so never in an Ack (the device resends later).
    REGISTRY_UNREADABLE = "registry_unreadable"


#: the reasons fmfl.protocol's decoders raise (docs/protocol.md section 8, first table)
DECODE_REASONS: frozenset[AckReason] = frozenset(list(AckReason)[: list(AckReason).index(AckReason.CLIENT_MISMATCH)])

#: reasons that say nothing about the update: no Ack is sent, the device keeps it and resends
NOT_ACKED: frozenset[AckReason] = frozenset({AckReason.REGISTRY_UNREADABLE})

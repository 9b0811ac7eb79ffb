"""FROZEN: fmfl.protocol exactly as it was at protocol 1.1 (commit ab6038e), imports renamed; do not edit.

A device that speaks 1.1 only is built from this copy (tests/protocol/test_compat_1_1.py) to check that a
1.2 gateway still serves it. Original docstring:

The contract between devices and gateways: topics, message framing, the update codec and chunking.

Imports numpy, zstandard and the standard library only. docs/protocol.md is the specification.
"""

from fmfl_protocol_1_1.chunking import DEFAULT_MAX_PACKET_BYTES, Chunk, Reassembler, parse_chunk, split_message
from fmfl_protocol_1_1.codec import (
    DEFAULT_CODEC,
    CodecSpec,
    ErrorFeedback,
    SparseUpdate,
    UpdateEncoder,
    decode_update,
)
from fmfl_protocol_1_1.errors import ProtocolError, Reason
from fmfl_protocol_1_1.framing import MAJOR_VERSION, MINOR_VERSION, MessageType
from fmfl_protocol_1_1.ids import check_bundle_id, check_id
from fmfl_protocol_1_1.limits import Limits, max_payload_bytes
from fmfl_protocol_1_1.messages import (
    Ack,
    ClientHello,
    ClientStatus,
    ClientUpdate,
    GlobalModel,
    Message,
    RoundTask,
    decode_message,
    new_nonce,
    new_update_id,
)
from fmfl_protocol_1_1.topics import Topics

__all__ = [
    "DEFAULT_CODEC",
    "DEFAULT_MAX_PACKET_BYTES",
    "MAJOR_VERSION",
    "MINOR_VERSION",
    "Ack",
    "Chunk",
    "ClientHello",
    "ClientStatus",
    "ClientUpdate",
    "CodecSpec",
    "ErrorFeedback",
    "GlobalModel",
    "Limits",
    "Message",
    "MessageType",
    "ProtocolError",
    "Reason",
    "Reassembler",
    "RoundTask",
    "SparseUpdate",
    "Topics",
    "UpdateEncoder",
    "check_bundle_id",
    "check_id",
    "decode_message",
    "decode_update",
    "max_payload_bytes",
    "new_nonce",
    "new_update_id",
    "parse_chunk",
    "split_message",
]

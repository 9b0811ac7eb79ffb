"""The contract between devices and gateways: topics, message framing, the update codec and chunking.

Imports numpy, zstandard and the standard library only. docs/protocol.md is the specification.
"""

from fmfl.protocol.chunking import DEFAULT_MAX_PACKET_BYTES, Chunk, Reassembler, parse_chunk, split_message
from fmfl.protocol.codec import (
    DEFAULT_CODEC,
    CodecSpec,
    ErrorFeedback,
    SparseUpdate,
    UpdateEncoder,
    decode_update,
)
from fmfl.protocol.errors import ProtocolError, Reason
from fmfl.protocol.framing import MAJOR_VERSION, MINOR_VERSION, MessageType
from fmfl.protocol.ids import check_bundle_id, check_id
from fmfl.protocol.limits import Limits, max_payload_bytes
from fmfl.protocol.messages import (
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
from fmfl.protocol.reasons import AckReason
from fmfl.protocol.topics import Topics

__all__ = [
    "DEFAULT_CODEC",
    "DEFAULT_MAX_PACKET_BYTES",
    "MAJOR_VERSION",
    "MINOR_VERSION",
    "Ack",
    "AckReason",
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

"""The update codec: composable encoders (sparsify, quantize, error feedback, index coding, zstd)."""

from fmfl.protocol.codec.base import ValueCoding
from fmfl.protocol.codec.decoder import decode_update
from fmfl.protocol.codec.encoder import UpdateEncoder
from fmfl.protocol.codec.error_feedback import ErrorFeedback
from fmfl.protocol.codec.index_coding import IndexCoding
from fmfl.protocol.codec.payload import GroupMode
from fmfl.protocol.codec.sparse import SparseUpdate
from fmfl.protocol.codec.spec import DEFAULT_CODEC, CodecSpec, Sparsification, Values

__all__ = [
    "DEFAULT_CODEC",
    "CodecSpec",
    "ErrorFeedback",
    "GroupMode",
    "IndexCoding",
    "SparseUpdate",
    "Sparsification",
    "UpdateEncoder",
    "ValueCoding",
    "Values",
    "decode_update",
]

"""The update codec: composable encoders (sparsify, quantize, error feedback, index coding, zstd)."""

from fmfl_protocol_1_1.codec.base import ValueCoding
from fmfl_protocol_1_1.codec.decoder import decode_update
from fmfl_protocol_1_1.codec.encoder import UpdateEncoder
from fmfl_protocol_1_1.codec.error_feedback import ErrorFeedback
from fmfl_protocol_1_1.codec.index_coding import IndexCoding
from fmfl_protocol_1_1.codec.payload import GroupMode
from fmfl_protocol_1_1.codec.sparse import SparseUpdate
from fmfl_protocol_1_1.codec.spec import DEFAULT_CODEC, CodecSpec, Sparsification, Values

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

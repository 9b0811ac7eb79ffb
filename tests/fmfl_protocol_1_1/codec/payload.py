"""The binary layout of an update payload (format 1). docs/protocol.md section "Update payload" is the spec.

    payload = format:u8 (=1)  flags:u8 (bit 0: zstd; others 0)  [raw_length:u32  zstd frame]  /  body
    body    = size:u32  nnz:u32  index_coding:u8  value_coding:u8  group_mode:u8  reserved:u8 (=0)
              index_length:u32  index section  [group section]  [scales: G x f32]  values

All integers are little-endian.
"""

from __future__ import annotations

import struct
from enum import IntEnum

PAYLOAD_FORMAT = 1
FLAG_ZSTD = 0x01
PREFIX = struct.Struct("<BB")
RAW_LENGTH = struct.Struct("<I")
BODY_HEADER = struct.Struct("<IIBBBBI")
U32 = struct.Struct("<I")


class GroupMode(IntEnum):
    """How the scale groups are given (byte 10 of the body)."""

    NONE = 0  # fp32 / fp16: no scales
    BLOCK = 1  # block:u32 >= 1; G = ceil(nnz / block) groups, the last one holds the remainder
    EXPLICIT = 2  # G:u32, then G counts:u32 summing to nnz (per-tensor scales)

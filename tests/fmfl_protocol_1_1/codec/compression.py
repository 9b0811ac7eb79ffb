"""Optional zstd of a whole payload body, decompressed within a bound fixed before reading the frame.

Zstandard: Collet & Kucherawy, RFC 8878 (2021). A decompression bomb is refused before any output is
produced: the frame must declare its content size (RFC 8878 section 3.1.1.1.2), which must equal the size
the payload announces and stay within the caller's bound; the window is capped at
``max(1 MiB, content size rounded up to a power of two)``; exactly one frame, nothing after it.
"""

from __future__ import annotations

import zstandard

from fmfl_protocol_1_1.errors import ProtocolError, Reason

_MIN_WINDOW = 1 << 20


def compress(body: bytes, level: int) -> bytes:
    """One zstd frame with its content size written."""
    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False).compress(body)


def decompress(frame: memoryview, expected_size: int, max_size: int) -> bytes:
    """The ``expected_size`` bytes in ``frame``, or :class:`ProtocolError`. Never produces more."""
    if expected_size > max_size:
        raise ProtocolError(Reason.TOO_LARGE, f"declared body of {expected_size} bytes exceeds {max_size}")
    data = bytes(frame)
    try:
        content_size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as error:
        raise ProtocolError(Reason.DECOMPRESSION, f"not a zstd frame header: {error}") from None
    if content_size != expected_size:
        raise ProtocolError(
            Reason.DECOMPRESSION, f"zstd frame content size {content_size}, payload says {expected_size}"
        )
    window = max(_MIN_WINDOW, 1 << max(0, expected_size - 1).bit_length())
    try:
        decompressor = zstandard.ZstdDecompressor(max_window_size=window).decompressobj()
        body = decompressor.decompress(data)
    except zstandard.ZstdError as error:
        raise ProtocolError(Reason.DECOMPRESSION, f"corrupt zstd frame: {error}") from None
    if not decompressor.eof:
        raise ProtocolError(Reason.TRUNCATED, "zstd frame ends early")
    if decompressor.unused_data:
        raise ProtocolError(Reason.TRAILING_BYTES, "bytes after the zstd frame")
    if len(body) != expected_size:
        raise ProtocolError(Reason.DECOMPRESSION, f"zstd gave {len(body)} bytes, declared {expected_size}")
    return body

"""Refuse ONNX files whose tensors live in external data files, without parsing ONNX.

ONNX Runtime 1.19.2 follows a tensor's ``external_data`` location wherever it points, also outside the
bundle (``../secret.bin``, absolute paths). fmfl never writes external data, so any reference in a
bundle is refused before ONNX Runtime sees the file. This walks the protobuf wire format directly
(ModelProto -> GraphProto -> initializers, node attributes, subgraphs, functions) so that devices need
neither the ``onnx`` package nor its parser, whose CVEs are the reason for the check.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from fmfl.errors import FmflError

# Field numbers from onnx.proto (IR version 9/10).
MODEL_GRAPH, MODEL_FUNCTIONS = 7, 25
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_SPARSE_INITIALIZER = 1, 5, 15
NODE_ATTRIBUTE = 5
FUNCTION_NODE = 7
ATTR_T, ATTR_G, ATTR_TENSORS, ATTR_GRAPHS, ATTR_SPARSE, ATTR_SPARSES = 5, 6, 10, 11, 22, 23
SPARSE_VALUES, SPARSE_INDICES = 1, 2
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 13, 14
EXTERNAL = 1
MAX_DEPTH = 32


class ExternalDataError(FmflError):
    """An ONNX file refers to tensor data outside itself, or is not a well-formed protobuf."""


def _varint(buf: memoryview | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ExternalDataError("truncated or malformed protobuf varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(buf: memoryview | mmap.mmap, start: int, end: int):  # type: ignore[no-untyped-def]
    """(field number, wire type, value or (start, end) of a length-delimited field)."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ExternalDataError("protobuf field runs past its message")
            yield field, wire, (pos, pos + length)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ExternalDataError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ExternalDataError("protobuf field runs past its message")


def _tensor(buf: memoryview | mmap.mmap, span: tuple[int, int]) -> bool:
    for field, wire, value in fields(buf, *span):
        if field == TENSOR_EXTERNAL_DATA and wire == 2:
            return True
        if field == TENSOR_DATA_LOCATION and wire == 0 and value == EXTERNAL:
            return True
    return False


def _graph(buf: memoryview | mmap.mmap, span: tuple[int, int], depth: int) -> bool:
    if depth > MAX_DEPTH:
        raise ExternalDataError("ONNX subgraphs nested too deeply")
    for field, wire, value in fields(buf, *span):
        if wire != 2:
            continue
        if field == GRAPH_INITIALIZER and _tensor(buf, value):
            return True
        if field == GRAPH_SPARSE_INITIALIZER and _sparse(buf, value):
            return True
        if field == GRAPH_NODE and _node(buf, value, depth):
            return True
    return False


def _sparse(buf: memoryview | mmap.mmap, span: tuple[int, int]) -> bool:
    return any(
        wire == 2 and field in (SPARSE_VALUES, SPARSE_INDICES) and _tensor(buf, value)
        for field, wire, value in fields(buf, *span)
    )


def _node(buf: memoryview | mmap.mmap, span: tuple[int, int], depth: int) -> bool:
    for field, wire, value in fields(buf, *span):
        if field != NODE_ATTRIBUTE or wire != 2:
            continue
        for afield, awire, avalue in fields(buf, *value):
            if awire != 2:
                continue
            if afield in (ATTR_T, ATTR_TENSORS) and _tensor(buf, avalue):
                return True
            if afield in (ATTR_SPARSE, ATTR_SPARSES) and _sparse(buf, avalue):
                return True
            if afield in (ATTR_G, ATTR_GRAPHS) and _graph(buf, avalue, depth + 1):
                return True
    return False


def has_external_data(path: Path) -> bool:
    """True if any tensor of the ONNX model at ``path`` is stored outside the file."""
    with path.open("rb") as f:
        size = path.stat().st_size
        if size == 0:
            raise ExternalDataError(f"{path.name} is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for field, wire, value in fields(buf, 0, size):
                if wire != 2:
                    continue
                if field == MODEL_GRAPH and _graph(buf, value, 0):
                    return True
                if field == MODEL_FUNCTIONS:
                    for ffield, fwire, fvalue in fields(buf, *value):
                        if ffield == FUNCTION_NODE and fwire == 2 and _node(buf, fvalue, 1):
                            return True
    return False

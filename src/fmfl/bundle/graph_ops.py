"""Which operators an ONNX file uses, read from the protobuf wire format (no ``onnx`` package needed).

Devices run bundles on the standard onnxruntime, which implements the ``ai.onnx`` operator set; a graph
that needs ``com.microsoft`` contrib ops (the old training build's gradient ops), a custom domain or local
functions may load on one build and fail on another (mobile, web, a minimal build). ``check_standard_ops``
refuses them at export and on the device, with the offending operators named; ``fmfl inspect`` shows the
op counts and opsets.
"""

from __future__ import annotations

import mmap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fmfl.bundle.onnx_scan import ExternalDataError, fields
from fmfl.errors import FmflError

# Field numbers from onnx.proto.
MODEL_OPSET_IMPORT, MODEL_GRAPH, MODEL_FUNCTIONS = 8, 7, 25
OPSET_DOMAIN, OPSET_VERSION = 1, 2
GRAPH_NODE = 1
NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 4, 5, 7
ATTR_G, ATTR_GRAPHS = 6, 11
FUNCTION_NAME = 1
MAX_DEPTH = 32
#: the domains the standard onnxruntime builds (CPU, CUDA, mobile, web) all implement
STANDARD_DOMAINS = ("", "ai.onnx")


class NonStandardGraph(FmflError):
    """An ONNX graph that uses operators outside the standard ``ai.onnx`` set, or local functions."""


@dataclass(frozen=True)
class GraphOps:
    """Opset imports (domain -> version), operator counts by (domain, op type), local function names."""

    opsets: dict[str, int]
    ops: Counter[tuple[str, str]]
    functions: tuple[str, ...] = field(default=())

    @property
    def num_nodes(self) -> int:
        return sum(self.ops.values())

    @property
    def onnx_opset(self) -> int:
        return max((v for d, v in self.opsets.items() if d in STANDARD_DOMAINS), default=0)

    def non_standard(self) -> list[str]:
        return sorted(f"{d}:{t}" for d, t in self.ops if d not in STANDARD_DOMAINS)


def _text(buf: memoryview | mmap.mmap, span: tuple[int, int]) -> str:
    return bytes(buf[span[0] : span[1]]).decode("utf-8", "replace")


def _graph(buf: memoryview | mmap.mmap, span: tuple[int, int], ops: Counter[tuple[str, str]], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ExternalDataError("ONNX subgraphs nested too deeply")
    for fnum, wire, value in fields(buf, *span):
        if fnum == GRAPH_NODE and wire == 2:
            _node(buf, value, ops, depth)


def _node(buf: memoryview | mmap.mmap, span: tuple[int, int], ops: Counter[tuple[str, str]], depth: int) -> None:
    op_type, domain = "", ""
    for fnum, wire, value in fields(buf, *span):
        if wire != 2:
            continue
        if fnum == NODE_OP_TYPE:
            op_type = _text(buf, value)
        elif fnum == NODE_DOMAIN:
            domain = _text(buf, value)
        elif fnum == NODE_ATTRIBUTE:
            for afield, awire, avalue in fields(buf, *value):
                if awire == 2 and afield in (ATTR_G, ATTR_GRAPHS):
                    _graph(buf, avalue, ops, depth + 1)
    ops[(domain, op_type)] += 1


def graph_ops(path: Path) -> GraphOps:
    """Read the opsets, operators and local functions of the ONNX model at ``path``."""
    size = path.stat().st_size
    if size == 0:
        raise ExternalDataError(f"{path.name} is empty")
    opsets: dict[str, int] = {}
    ops: Counter[tuple[str, str]] = Counter()
    functions: list[str] = []
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        for fnum, wire, value in fields(buf, 0, size):
            if wire != 2:
                continue
            if fnum == MODEL_OPSET_IMPORT:
                domain, version = "", 0
                for ofield, owire, ovalue in fields(buf, *value):
                    if ofield == OPSET_DOMAIN and owire == 2:
                        domain = _text(buf, ovalue)
                    elif ofield == OPSET_VERSION and owire == 0:
                        version = int(ovalue)
                opsets[domain] = version
            elif fnum == MODEL_GRAPH:
                _graph(buf, value, ops, 0)
            elif fnum == MODEL_FUNCTIONS:
                names = [_text(buf, v) for f2, w2, v in fields(buf, *value) if f2 == FUNCTION_NAME and w2 == 2]
                functions += names or ["?"]
    return GraphOps(opsets, ops, tuple(functions))


def check_standard_ops(path: Path) -> GraphOps:
    """``graph_ops(path)``, refusing non-standard domains and local functions with a message naming them."""
    try:
        found = graph_ops(path)
    except ExternalDataError as exc:
        raise NonStandardGraph(f"{path.name} is not a well-formed ONNX file: {exc}") from exc
    bad = found.non_standard()
    if bad:
        raise NonStandardGraph(
            f"{path.name} uses operators outside the standard ai.onnx set: {', '.join(bad)}; the standard "
            "onnxruntime (and its mobile and web builds) may not run them: re-export it with this fmfl"
        )
    if found.functions:
        raise NonStandardGraph(f"{path.name} defines local functions ({', '.join(found.functions)}); fmfl graphs "
                               "use plain ai.onnx operators only: re-export it with this fmfl")
    return found

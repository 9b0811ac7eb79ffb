"""Codec spec strings: ``"topk:0.01+int8+ef"``, parsed into a frozen :class:`CodecSpec` and printed back.

Grammar (ABNF, RFC 5234; lower case, no spaces)::

    spec      = stage *( "+" stage )
    stage     = "dense" / "fp32" / "fp16"
              / "topk" ":" amount [ ",per_tensor" ]
              / "randk" ":" amount
              / quantizer [ ":" qoption *( "," qoption ) ]
              / "ef"
              / "zstd" [ ":level=" 1*2DIGIT ]            ; level 1..22, default 3
    quantizer = "int8" / "int4" / "sign"
    qoption   = "block=" 1*DIGIT / "per_tensor" / "sr"   ; scale groups; sr = stochastic rounding
    amount    = 1*DIGIT                                  ; a count of coordinates (>= 1)
              / fraction                                 ; any other float literal, 0 < fraction <= 1

At most one sparsifier (``topk``/``randk``), one value stage (``dense``/``fp32``/``fp16``/quantizer), one
``ef`` and one ``zstd``; stages may come in any order. Quantizer scales are per block of 256 sent values
unless ``block=N`` or ``per_tensor`` says otherwise. ``str()`` prints the canonical form: sparsifier, value
stage (omitted when fp32), ``ef``, ``zstd``, defaults omitted, or ``"dense"`` when nothing is left.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from fmfl.compat import StrEnum
from fmfl.protocol.errors import ProtocolError, Reason

DEFAULT_BLOCK = 256
DEFAULT_ZSTD_LEVEL = 3
MAX_SPEC_CHARS = 256
_FRACTION = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")


class Sparsification(StrEnum):
    NONE = "none"
    TOPK = "topk"
    RANDK = "randk"


class Values(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"
    SIGN = "sign"


_QUANTIZERS = (Values.INT8, Values.INT4, Values.SIGN)


def _bad(spec: str, why: str) -> ProtocolError:
    return ProtocolError(Reason.BAD_CODEC_SPEC, f"{spec!r}: {why}")


@dataclass(frozen=True, kw_only=True)
class CodecSpec:
    """One encoder chain. Build it with :meth:`parse`; ``str(spec)`` is the canonical string."""

    sparsification: Sparsification = Sparsification.NONE
    fraction: float | None = None  # of coordinates to keep, for topk/randk
    count: int | None = None  # of coordinates to keep, for topk/randk
    per_tensor_k: bool = False  # topk per tensor
    values: Values = Values.FP32
    block: int | None = DEFAULT_BLOCK  # quantizer scale group size; None = one group per tensor
    stochastic: bool = False  # stochastic rounding (quantizers)
    error_feedback: bool = False
    zstd_level: int | None = None  # None = no zstd

    def __post_init__(self) -> None:
        text = repr(self)
        if self.sparsification == Sparsification.NONE:
            if self.fraction is not None or self.count is not None or self.per_tensor_k:
                raise _bad(text, "fraction/count/per_tensor need topk or randk")
        else:
            if (self.fraction is None) == (self.count is None):
                raise _bad(text, f"{self.sparsification} needs exactly one of a fraction or a count")
            if self.fraction is not None and not (math.isfinite(self.fraction) and 0 < self.fraction <= 1):
                raise _bad(text, "fraction must be in (0, 1]")
            if self.count is not None and self.count < 1:
                raise _bad(text, "count must be >= 1")
            if self.per_tensor_k and self.sparsification != Sparsification.TOPK:
                raise _bad(text, "per_tensor applies to topk only")
        if self.values in _QUANTIZERS:
            if self.block is not None and not 1 <= self.block < 2**31:
                raise _bad(text, "block must be in [1, 2**31)")
        else:
            if self.stochastic:
                raise _bad(text, "sr applies to int8/int4/sign only")
            # Scale groups mean nothing without a quantizer: normalise so equal chains compare equal.
            object.__setattr__(self, "block", DEFAULT_BLOCK)
        if self.zstd_level is not None and not 1 <= self.zstd_level <= 22:
            raise _bad(text, "zstd level must be in [1, 22]")

    @property
    def per_tensor_scale(self) -> bool:
        return self.values in _QUANTIZERS and self.block is None

    @property
    def needs_tensor_sizes(self) -> bool:
        return self.per_tensor_k or self.per_tensor_scale

    @classmethod
    def parse(cls, text: str) -> CodecSpec:
        """The spec for ``text``, or :class:`ProtocolError` (reason ``bad_codec_spec``)."""
        if not isinstance(text, str) or not 0 < len(text) <= MAX_SPEC_CHARS:
            raise _bad(str(text)[:MAX_SPEC_CHARS], f"a spec is a string of 1..{MAX_SPEC_CHARS} characters")
        fields: dict[str, object] = {}
        seen: set[str] = set()
        for stage in text.strip().split("+"):
            name, _, args = stage.partition(":")
            kind = _stage_kind(text, name)
            if kind in seen:
                raise _bad(text, f"more than one {kind} stage")
            seen.add(kind)
            if name in ("dense", "fp32", "fp16", "ef") and args:
                raise _bad(text, f"{name} takes no options")
            if name in ("topk", "randk"):
                fields.update(_parse_amount(text, name, args))
            elif name in ("dense", "fp32"):
                fields["values"] = Values.FP32
            elif name == "fp16":
                fields["values"] = Values.FP16
            elif name in _QUANTIZERS:
                fields["values"] = Values(name)
                fields.update(_parse_quantizer(text, args))
            elif name == "ef":
                fields["error_feedback"] = True
            else:
                fields["zstd_level"] = _parse_zstd(text, args)
        try:
            return cls(**fields)  # type: ignore[arg-type]
        except ProtocolError as exc:
            # Name the spec as the user wrote it, not the dataclass's repr.
            raise _bad(text, exc.message.rsplit(": ", 1)[-1]) from None

    def __str__(self) -> str:
        stages: list[str] = []
        if self.sparsification != Sparsification.NONE:
            amount = str(self.count) if self.count is not None else repr(self.fraction)
            stages.append(f"{self.sparsification}:{amount}" + (",per_tensor" if self.per_tensor_k else ""))
        if self.values in _QUANTIZERS:
            options = []
            if self.block is None:
                options.append("per_tensor")
            elif self.block != DEFAULT_BLOCK:
                options.append(f"block={self.block}")
            if self.stochastic:
                options.append("sr")
            stages.append(str(self.values) + (":" + ",".join(options) if options else ""))
        elif self.values == Values.FP16:
            stages.append("fp16")
        if self.error_feedback:
            stages.append("ef")
        if self.zstd_level is not None:
            default = self.zstd_level == DEFAULT_ZSTD_LEVEL
            stages.append("zstd" if default else f"zstd:level={self.zstd_level}")
        return "+".join(stages) or "dense"


def _stage_kind(text: str, name: str) -> str:
    if name in ("topk", "randk"):
        return "sparsifier"
    if name in ("dense", "fp32", "fp16", *_QUANTIZERS):
        return "value"
    if name in ("ef", "zstd"):
        return name
    raise _bad(text, f"unknown stage {name!r}")


def _parse_int(text: str, digits: str, what: str) -> int:
    if not digits.isascii() or not digits.isdigit() or len(digits) > 10:
        raise _bad(text, f"{what} must be a decimal integer")
    return int(digits)


def _parse_amount(text: str, name: str, args: str) -> dict[str, object]:
    amount, _, option = args.partition(",")
    out: dict[str, object] = {"sparsification": Sparsification(name)}
    if option:
        if option != "per_tensor":
            raise _bad(text, f"unknown {name} option {option!r}")
        out["per_tensor_k"] = True
    if amount.isascii() and amount.isdigit():
        out["count"] = _parse_int(text, amount, "count")
        return out
    if not _FRACTION.fullmatch(amount):
        raise _bad(text, f"{name} needs a count or a fraction, got {amount!r}")
    out["fraction"] = float(amount)
    return out


def _parse_quantizer(text: str, args: str) -> dict[str, object]:
    out: dict[str, object] = {}
    seen: set[str] = set()
    for option in args.split(",") if args else []:
        key = "scale" if option == "per_tensor" or option.startswith("block=") else option
        if key in seen:
            raise _bad(text, f"repeated or conflicting option {option!r}")
        seen.add(key)
        if option.startswith("block="):
            out["block"] = _parse_int(text, option[len("block=") :], "block")
        elif option == "per_tensor":
            out["block"] = None
        elif option == "sr":
            out["stochastic"] = True
        else:
            raise _bad(text, f"unknown quantizer option {option!r}")
    return out


def _parse_zstd(text: str, args: str) -> int:
    if not args:
        return DEFAULT_ZSTD_LEVEL
    if not args.startswith("level="):
        raise _bad(text, f"unknown zstd option {args!r}")
    return _parse_int(text, args[len("level=") :], "zstd level")


DEFAULT_CODEC = CodecSpec.parse("topk:0.01+int8+ef")
"""Top-k 1% + int8 (per block of 256) + error feedback; indices delta-varint or bitmap."""

"""CodecSpec: the grammar, canonical printing, and every rejection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fmfl.protocol import DEFAULT_CODEC, CodecSpec, ProtocolError
from fmfl.protocol.codec.spec import Sparsification, Values


def test_default_codec_is_topk_one_percent_int8_with_error_feedback() -> None:
    assert str(DEFAULT_CODEC) == "topk:0.01+int8+ef"
    assert DEFAULT_CODEC.sparsification == Sparsification.TOPK
    assert DEFAULT_CODEC.fraction == 0.01
    assert DEFAULT_CODEC.values == Values.INT8
    assert DEFAULT_CODEC.block == 256
    assert DEFAULT_CODEC.error_feedback


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("dense", "dense"),
        ("fp32", "dense"),
        ("fp16", "fp16"),
        ("ef+int8+topk:0.01", "topk:0.01+int8+ef"),
        ("topk:500", "topk:500"),
        ("topk:1e-3", "topk:0.001"),
        ("topk:0.05,per_tensor+int4:block=64,sr+ef", "topk:0.05,per_tensor+int4:block=64,sr+ef"),
        ("int8:block=256", "int8"),
        ("sign:per_tensor", "sign:per_tensor"),
        ("randk:0.01+int8+ef+zstd:level=3", "randk:0.01+int8+ef+zstd"),
        ("dense+zstd:level=19", "zstd:level=19"),
        ("  topk:1.0  ", "topk:1.0"),
    ],
)
def test_parse_prints_canonical_form(text: str, canonical: str) -> None:
    spec = CodecSpec.parse(text)
    assert str(spec) == canonical
    assert CodecSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "topk",
        "topk:",
        "topk:0",
        "topk:1.5",
        "topk:-0.1",
        "topk:nan",
        "topk:inf",
        "topk:1_0",
        "topk:0.1,per_layer",
        "randk:0.1,per_tensor",
        "topk:0.1+randk:0.1",
        "int8+int4",
        "int8+fp16",
        "int8:block=0",
        "int8:block=x",
        "int8:block=4,per_tensor",
        "int8:sr,sr",
        "int8:foo",
        "fp16:sr",
        "dense:1",
        "ef:1",
        "ef+ef",
        "zstd:level=0",
        "zstd:level=23",
        "zstd:fast",
        "gzip",
        "TOPK:0.1",
        "topk:0.1 + ef",
        "x" * 300,
    ],
)
def test_bad_specs_are_rejected_with_reason(text: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        CodecSpec.parse(text)
    assert caught.value.reason == "bad_codec_spec"


def test_spec_fields_are_checked_when_built_directly() -> None:
    with pytest.raises(ProtocolError, match="sr applies"):
        CodecSpec(values=Values.FP16, stochastic=True)
    with pytest.raises(ProtocolError, match="exactly one"):
        CodecSpec(sparsification=Sparsification.TOPK)


_specs = st.builds(
    lambda sparse, amount, per_tensor, values, scale, sr, ef, zstd: CodecSpec(
        sparsification=sparse,
        fraction=amount if sparse != Sparsification.NONE and isinstance(amount, float) else None,
        count=amount if sparse != Sparsification.NONE and isinstance(amount, int) else None,
        per_tensor_k=per_tensor and sparse == Sparsification.TOPK,
        values=values,
        block=scale,
        stochastic=sr and values in (Values.INT8, Values.INT4, Values.SIGN),
        error_feedback=ef,
        zstd_level=zstd,
    ),
    st.sampled_from(Sparsification),
    st.one_of(st.floats(min_value=1e-9, max_value=1.0), st.integers(1, 10**9)),
    st.booleans(),
    st.sampled_from(Values),
    st.one_of(st.none(), st.integers(1, 2**31 - 1)),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.integers(1, 22)),
)


@given(_specs)
def test_every_spec_round_trips_through_its_string(spec: CodecSpec) -> None:
    assert CodecSpec.parse(str(spec)) == spec


@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_protocol_error(text: str) -> None:
    try:
        spec = CodecSpec.parse(text)
    except ProtocolError as error:
        reason = error.reason
    else:
        reason = None
        assert CodecSpec.parse(str(spec)) == spec
    assert reason in (None, "bad_codec_spec")

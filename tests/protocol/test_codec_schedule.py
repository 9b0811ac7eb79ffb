"""Density warm-up schedules: parsing, the codec of each round, and clear refusals."""

from __future__ import annotations

import pytest

from fmfl.protocol.codec.schedule import CodecSchedule


def test_each_phase_lasts_its_rounds_then_the_steady_codec_holds() -> None:
    schedule = CodecSchedule.parse("topk:0.1+int8+ef@5,topk:0.03+int8+ef@10,topk:0.01+int8+ef")

    codecs = [schedule.codec_for_round(r) for r in range(1, 201)]

    assert codecs[:5] == ["topk:0.1+int8+ef"] * 5
    assert codecs[5:15] == ["topk:0.03+int8+ef"] * 10
    assert set(codecs[15:]) == {"topk:0.01+int8+ef"}
    assert str(CodecSchedule.parse(str(schedule))) == str(schedule)  # prints back to what it parses from


def test_a_plain_codec_is_a_schedule_of_one_and_codecs_with_commas_survive() -> None:
    assert CodecSchedule.parse("topk:0.01+int8+ef").codec_for_round(7) == "topk:0.01+int8+ef"
    schedule = CodecSchedule.parse("topk:0.1,per_tensor+int8+ef@3,topk:0.01,per_tensor+int8+ef")
    assert schedule.codec_for_round(3) == "topk:0.1,per_tensor+int8+ef"
    assert schedule.codec_for_round(4) == "topk:0.01,per_tensor+int8+ef"


@pytest.mark.parametrize(("text", "message"), [
    ("topk:0.1+int8+ef@5", "must end with the steady codec"),
    ("", "must end with the steady codec"),
    ("topk:0.1+int8+ef@0,dense", "is not CODEC@ROUNDS with ROUNDS >= 1"),
    ("topk:0.1+int8+ef@x,dense", "is not CODEC@ROUNDS with ROUNDS >= 1"),
    ("bogus@3,dense", "unknown stage 'bogus'"),
])
def test_bad_schedules_are_refused_with_the_part_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CodecSchedule.parse(text)


def test_rounds_count_from_one() -> None:
    with pytest.raises(ValueError, match="rounds count from 1"):
        CodecSchedule.parse("dense").codec_for_round(0)

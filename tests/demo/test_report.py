"""What the demo's report says about the codec that ran."""

from __future__ import annotations

from fmfl.demo.report import codec_used
from fmfl.protocol.codec.schedule import CodecSchedule


def test_a_warm_up_reads_back_as_the_schedule_that_ran() -> None:
    schedule = CodecSchedule.parse("topk:0.2+sign+ef@5,topk:0.05+sign+ef")
    rounds = [{"round": r, "codec": schedule.codec_for_round(r)} for r in range(1, 13)]
    assert codec_used(rounds) == str(schedule)
    assert CodecSchedule.parse(codec_used(rounds)) == schedule


def test_one_codec_reads_back_as_itself_and_no_rounds_as_nothing() -> None:
    assert codec_used([{"codec": "dense"}, {"codec": "dense"}]) == "dense"
    assert codec_used([]) == ""

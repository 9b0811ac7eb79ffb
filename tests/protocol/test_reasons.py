"""One vocabulary of refusals: ``fmfl.protocol.AckReason`` is docs/protocol.md section 8, and a gateway can
encode no other reason in an Ack."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fmfl.aggregation.validation import RejectedUpdate, validate_update
from fmfl.aggregator.core.round_state import OpenRound, RoundCounters
from fmfl.protocol import Ack, AckReason, Limits, ProtocolError, RoundTask, SparseUpdate
from fmfl.protocol.framing import MessageType, frame
from fmfl.protocol.reasons import DECODE_REASONS

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
LIMITS = Limits.for_vector_size(64)


def _section_8_tables() -> list[list[set[str]]]:
    """Per table of section 8: the backticked codes in the first column of each row."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    section = text[text.index("\n## 8. ") : text.index("\n## 9. ")]
    tables: list[list[set[str]]] = []
    in_table = False
    for line in section.splitlines():
        if line.startswith("|") and not in_table:
            tables.append([])
        in_table = line.startswith("|")
        if line.startswith("| `"):
            tables[-1].append(set(re.findall(r"`([^`]+)`", line.split(" | ")[0])))
    return tables


def test_section_8_lists_every_reason_and_no_other() -> None:
    tables = _section_8_tables()
    documented = set().union(*(codes for table in tables for codes in table))
    # registry_unreadable is never in an Ack; the section names it where it says when no Ack comes.
    assert documented == {r.value for r in AckReason} - {AckReason.REGISTRY_UNREADABLE}
    assert AckReason.REGISTRY_UNREADABLE in PROTOCOL_MD.read_text(encoding="utf-8")


def test_the_first_table_is_what_the_decoders_raise() -> None:
    first = set().union(*_section_8_tables()[0])
    assert first == {r.value for r in DECODE_REASONS}
    assert len(first) == 19


def test_non_finite_has_one_spelling_from_the_decoder_and_from_the_validation() -> None:
    nan = SparseUpdate(np.array([1]), np.array([np.nan], np.float32), 64)
    with pytest.raises(RejectedUpdate) as refused:
        validate_update(nan, 1.0, "dev-1", size=64)
    assert refused.value.reason is AckReason.NON_FINITE
    assert refused.value.reason == "non_finite" == ProtocolError("non_finite", "x").reason


def test_a_gateway_cannot_encode_a_reason_outside_the_vocabulary() -> None:
    with pytest.raises(ProtocolError, match="not an AckReason") as info:
        Ack("dev-1", round=4, update_id="0f" * 16, accepted=False, reason="non-finite").to_bytes()
    assert info.value.reason == AckReason.BAD_METADATA
    for reason in AckReason:
        ack = Ack("dev-1", round=4, update_id="0f" * 16, accepted=False, reason=reason)
        assert Ack.from_bytes(ack.to_bytes(), LIMITS).reason == reason.value


def test_a_device_still_reads_an_ack_whose_reason_it_does_not_know() -> None:
    # A newer gateway may add reasons: the Ack decodes, and the device treats it as any negative Ack.
    meta = {"client_id": "dev-1", "round": 4, "update_id": "0f" * 16, "accepted": False, "reason": "brand_new"}
    ack = Ack.from_bytes(frame(MessageType.ACK, meta, b""), LIMITS)
    assert (ack.accepted, ack.reason) == (False, "brand_new")


def test_round_counters_are_typed_and_read_an_older_journal() -> None:
    task = RoundTask(
        federation="f", round=3, model_version=2, bundle_id="b@1", selected=("a", "b"), deadline=10.0,
        codec="topk:0.1", batch_size=8, lr=0.1, local_epochs=1, seed=7,
    )
    current = OpenRound(task, opened=0.0, close_at=10.0)
    current.count("bytes_up", 100)
    current.count("late")
    current.reject(AckReason.NON_FINITE)
    current.reject(AckReason.DUPLICATE_CLIENT)
    # A worker's share, and counters journaled by a gateway that spelled the reason "non-finite".
    current.merge({"bytes_up": 20, "rejected.non-finite": 2, "rejected.size": 1})
    assert current.tally() == RoundCounters(
        bytes_up=120, late=1, rejected={"duplicate-client": 1, "non_finite": 3, "size_mismatch": 1}
    )
    assert current.rejected_by_reason() == {"duplicate-client": 1, "non_finite": 3, "size_mismatch": 1}

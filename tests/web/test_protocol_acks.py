"""What the web device does after each Ack (docs/protocol.md section 8), from js/protocol/acks.js: every reason
the reference gateway can send (fmfl.protocol.AckReason) has its documented action, every Ack is final for its
update, and a reason the device does not know is still final (a newer gateway)."""

from __future__ import annotations

from support.web_protocol_node import run_protocol_js

from fmfl.protocol.reasons import AckReason

ACTIONS = """
output(Object.fromEntries(input.map((reason) => [reason, P.ackAction({ accepted: false, reason })])));
"""

EXPECTED_NEXT = {
    "wrong_run": "follow_newest_run",
    "wrong_federation": "reprovision_bundle", "wrong_bundle": "reprovision_bundle",
    "size_mismatch": "reprovision_bundle",
    "no_open_round": "wait_for_task", "stale_round": "wait_for_task", "not_selected": "wait_for_task",
    "too_stale": "wait_for_task", "duplicate-client": "wait_for_task", "norm": "wait_for_task",
    "capacity": "wait_for_task",
    "wrong_version": "take_round_model",
    "unknown_client": "send_hello",
    "client_mismatch": "fix_device", "wrong_round": "fix_device", "weight": "fix_device", "shape": "fix_device",
    "dtype": "fix_device", "indices": "fix_device",
    "unknown_device": "reprovision_key", "revoked_device": "reprovision_key", "unsigned": "reprovision_key",
    "bad_signature": "reprovision_key", "replayed_nonce": "reprovision_key",
}


def test_every_reference_ack_reason_has_its_documented_action() -> None:
    # registry_unreadable never travels in an Ack (the gateway's own fault); residual_mismatch is local.
    reasons = [str(r) for r in AckReason if r not in (AckReason.REGISTRY_UNREADABLE, AckReason.RESIDUAL_MISMATCH)]
    got = run_protocol_js(ACTIONS, [*reasons, "some_future_reason"])
    for reason in reasons:
        action = got[reason]
        assert action["dropFromOutbox"] is True, reason
        assert not action["why"].startswith("refused:"), f"{reason} is missing from acks.js"
        assert action["next"] == EXPECTED_NEXT.get(reason, "fix_device"), reason  # the rest: protocol errors
    assert got["some_future_reason"] == {"dropFromOutbox": True, "next": "wait_for_task",
                                         "why": "refused: some_future_reason"}
    accepted = run_protocol_js("output(P.ackAction({ accepted: true, reason: '' }));")
    assert accepted == {"dropFromOutbox": True, "next": "none", "why": "accepted"}

"""One MQTT publish as data: what a sans-IO protocol side (a gateway's engine, a device session) returns and
its MQTT adapter sends.

Every payload is one chunk of one framed message (``split_message``), or a bare frame where section 3 of
docs/protocol.md allows one, as the protocol requires of every fmfl topic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    """One MQTT publish (QoS 1 unless said otherwise)."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1

"""The rules for names that become MQTT topic levels: client ids, federations, prefixes, update ids.

MQTT 5.0 (OASIS 2019) section 4.7 reserves ``/``, ``+`` and ``#`` in topic names and ``$`` at the start; we
allow a portable subset, so an id is always one topic level and never a wildcard.
"""

from __future__ import annotations

import re

from fmfl_protocol_1_1.errors import ProtocolError, Reason

MAX_ID_CHARS = 64
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


def check_id(value: object, what: str = "client id") -> str:
    """``value`` if it is a valid id: 1..64 ASCII letters, digits, ``._:@-``, starting alphanumeric."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        shown = repr(value)[:80]
        raise ProtocolError(
            Reason.INVALID_ID,
            f"{what} {shown} must be 1..{MAX_ID_CHARS} of A-Z a-z 0-9 . _ : @ - (starting alphanumeric)",
        )
    return value


MAX_BUNDLE_ID_CHARS = 128
_BUNDLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}")


def check_bundle_id(value: object) -> str:
    """``value`` if it is a valid bundle id: 1..128 ASCII letters, digits, ``._:@+=-``."""
    if not isinstance(value, str) or not _BUNDLE_ID.fullmatch(value):
        raise ProtocolError(Reason.INVALID_ID, f"bundle id {repr(value)[:140]} breaks the bundle id rules")
    return value

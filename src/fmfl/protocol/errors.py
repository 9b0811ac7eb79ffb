"""The one exception the protocol raises for bad input, with a machine-readable reason.

Every decoder in :mod:`fmfl.protocol` turns any malformed input into a :class:`ProtocolError`; any other
exception escaping a decoder is a bug (the fuzzers in ``benchmarks/fuzz_protocol.py`` look for exactly that).
"""

from __future__ import annotations

from fmfl.errors import FmflError
from fmfl.protocol.reasons import AckReason

# The decoders' name for the one vocabulary of refusals (fmfl.protocol.reasons); they raise only DECODE_REASONS.
Reason = AckReason


class ProtocolError(FmflError):
    """Input that breaks the fmfl wire protocol.

    ``reason`` is a short machine-readable :class:`AckReason` (compare it with plain strings); the message says
    what was wrong in words.
    """

    def __init__(self, reason: Reason | str, message: str) -> None:
        self.reason = Reason(reason)
        self.message = message  # the words alone (an Ack's detail)
        super().__init__(f"{self.reason.value}: {message}")

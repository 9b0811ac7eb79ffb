"""The error every user-facing failure in fmfl derives from.

The CLI prints an ``FmflError`` as one line (no traceback) and exits with status 2; anything else
is a bug and keeps its traceback.
"""


class FmflError(Exception):
    """A failure caused by input, configuration or environment, with a message that says what to do."""

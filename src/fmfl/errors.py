"""The error every user-facing failure in fmfl derives from.

The CLI prints an ``FmflError`` as one line (no traceback) and exits with status 2; anything else
is a bug and keeps its traceback.
"""


class FmflError(Exception):
    """A failure caused by input, configuration or environment, with a message that says what to do."""


class ConfigError(FmflError, ValueError):
    """A setting out of range or malformed, raised where the setting is built (a config dataclass), so every
    caller, the CLI included, gets the one-line message without translating it. A ``ValueError`` too, as
    the config objects raised before."""

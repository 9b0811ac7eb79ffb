"""The error of the device's data layer."""

from fmfl.errors import FmflError


class DataError(FmflError):
    """Local data that cannot be used: missing, empty, corrupt, malformed, or with labels the model lacks.

    The message names the file (and line, where there is one) and says what is wrong.
    """

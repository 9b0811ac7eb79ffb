"""Errors of the data set loaders."""

from fmfl.errors import FmflError


class DatasetUnavailable(FmflError):
    """A public data set is neither installed nor downloadable; the message says how to get it."""


class DatasetCorrupt(FmflError):
    """A data set file is present but truncated, corrupt or not in the expected format."""

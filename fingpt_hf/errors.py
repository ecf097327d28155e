"""Errors for user mistakes: the CLI prints them without a traceback."""


class FinGPTError(ValueError):
    """A user-facing error whose message names the file, row or option at fault."""

"""Errors that mean "the user asked for something we cannot do".

Every layer raises :class:`SeqrecError` for bad input (a missing file, an unknown name, an option out of
range). The CLI turns it into one line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""


class SeqrecError(Exception):
    """Bad input or an unusable environment: shown to the user as one clear line, exit code 2."""

    exit_code = 2

"""Errors that mean "the user asked for something we cannot do".

Every layer raises :class:`SeqrecError` for bad input (a missing file, an unknown name, an option out of
range). The CLI turns it into one line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""

import errno
import shutil


class SeqrecError(Exception):
    """Bad input or an unusable environment: shown to the user as one clear line, exit code 2."""

    exit_code = 2


# errno values and messages that mean the disk (or SEQREC_HOME's file system) took no more writes; torch's writers
# raise RuntimeError with the C library's strerror text, and SQLite has words of its own
_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
                   errno.EROFS: "the file system is read-only", errno.EFBIG: "a file grew past the size limit"}
_STORAGE_MESSAGES = {"No space left on device": "no space left on the device",
                     "Disk quota exceeded": "the disk quota is exceeded",
                     "Read-only file system": "the file system is read-only",
                     "database or disk is full": "no space left on the device",
                     "attempt to write a readonly database": "the database is read-only",
                     "file write failed": "a file could not be written (is the disk full?)"}
# torch's own file writer loses the errno of a failed write: its messages name only a stream position
_TORCH_WRITER_MESSAGES = ("PytorchStreamWriter failed writing file", "basic_ios::clear: iostream error",
                          "unexpected pos")


def storage_failure(exc: BaseException) -> str | None:
    """One line saying why writing failed, when ``exc`` (or an exception it was raised from) means the disk is full
    or read-only; None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
            return _STORAGE_ERRNOS[exc.errno] + (f" writing {exc.filename}" if exc.filename else "")
        reason = next((reason for message, reason in _STORAGE_MESSAGES.items() if message in str(exc)), None)
        if reason:
            return reason
        if isinstance(exc, RuntimeError) and any(message in str(exc) for message in _TORCH_WRITER_MESSAGES):
            return torch_write_failure()
        exc = exc.__cause__ or exc.__context__
    return None


def torch_write_failure() -> str:
    """Why torch could not write a file: the space left where seqrec writes (SEQREC_HOME) tells a full disk from
    any other failure, which torch's message does not."""
    from seqrec.settings import get_settings  # (settings raises SeqrecError: imported here, not at the top)

    home = get_settings().home
    while not home.exists() and home != home.parent:
        home = home.parent
    if shutil.disk_usage(home).free < 1 << 20:
        return "no space left on the device"
    return "a file could not be written (is the disk full, or SEQREC_HOME read-only?)"

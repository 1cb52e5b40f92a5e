"""Reading the dashboard's own small files (token, pidfile, state file) without hanging or blowing up.

A FIFO opened for reading blocks until a writer comes; a 1 GB "token" read
whole takes gigabytes. :func:`read_small_file` opens non-blocking, refuses
anything but a regular file, and never reads more than its limit, so each of
these cases becomes one :class:`SmallFileError` with a reason a person can act on.
"""

from __future__ import annotations

import os
import stat

#: A token is 43 characters; anything near this size is not a token.
TOKEN_LIMIT = 4096
#: A pidfile holds one number.
PIDFILE_LIMIT = 64
#: The state file is a small JSON object.
STATE_LIMIT = 65536


class SmallFileError(OSError):
    """The file cannot be used: its ``reason`` is a short phrase ("is a FIFO, not a regular file")."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: "a FIFO", "a directory", ..."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_small_file(path: str, limit: int) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Raises FileNotFoundError when it is missing, and :class:`SmallFileError`
    when it is not a regular file, holds more than ``limit`` bytes, or cannot
    be read (the reason then carries the OS's words, e.g. "Permission denied").
    Never blocks on a FIFO or a device.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise SmallFileError(path, f"cannot be read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SmallFileError(path, f"is {file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise SmallFileError(path, f"is {st.st_size} bytes, more than the {limit} it may hold")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew while we read
            raise SmallFileError(path, f"holds more than the {limit} bytes it may hold")
        return b"".join(chunks)
    except SmallFileError:
        raise
    except OSError as e:
        raise SmallFileError(path, f"cannot be read: {e.strerror or e}") from None
    finally:
        os.close(fd)

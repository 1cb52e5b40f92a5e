"""Reading the end of a log file, and following it as it grows (``loopdash logs``).

No Twisted here: plain reads, so the CLI can tail a daemon's log from outside.
"""

from __future__ import annotations

import os


def last_lines(path: str, count: int, end: int | None = None, block: int = 8192) -> list[str]:
    """The last ``count`` lines of a text file before offset ``end`` (default: its end).

    Reads backwards block by block, so a large log costs only its tail. [] when missing.
    """
    if count <= 0:
        return []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        size = f.seek(0, os.SEEK_END)
        end = size if end is None else min(end, size)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count:
            position = max(0, position - block)
            f.seek(position)
            data = f.read(end - position)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]


def rotated_files(path: str) -> list[str]:
    """The rotated copies of a log, newest first: ``<path>.1``, ``<path>.2``, ... (twistd's LogFile naming)."""
    found = []
    number = 1
    while os.path.isfile(f"{path}.{number}"):
        found.append(f"{path}.{number}")
        number += 1
    return found


def last_lines_across(path: str, count: int, end: int | None = None) -> list[str]:
    """The last ``count`` lines of a log and, when it holds fewer, of its rotated files before it."""
    lines = last_lines(path, count, end)
    for older in rotated_files(path):
        if len(lines) >= count:
            break
        lines = last_lines(older, count - len(lines)) + lines
    return lines


class LogFollower:
    """The lines appended to a file since an offset; starts over when the file is rotated or truncated."""

    def __init__(self, path: str, identity: tuple[int, int] | None, offset: int) -> None:
        self.path = path
        self._identity = identity
        self.offset = offset
        self._partial = b""

    @classmethod
    def at_end(cls, path: str) -> LogFollower:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return cls(path, None, 0)
        return cls(path, (st.st_dev, st.st_ino), st.st_size)

    def poll(self) -> list[str]:
        """Complete lines written since the last poll (a line still being written waits)."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            if identity != self._identity or st.st_size < self.offset:
                # Rotated (a new file under the same name) or truncated: read it from its start.
                if self._identity is not None:
                    self.offset = 0
                    self._partial = b""
                self._identity = identity
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        if not complete and not _:
            return []
        return complete.decode("utf-8", errors="replace").split("\n")

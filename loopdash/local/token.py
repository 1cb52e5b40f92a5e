"""The API token's file: where it lives, writing a new one, reading it as it rotates.

No reactor here. The token is read through :class:`TokenFile`, which re-reads
the file whenever it changes on disk, so ``loopdash generate-token`` (or any
editor) rotates it without a restart.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable

from loopdash.loop.filecache import identity_of

TOKEN_RELATIVE_PATH = os.path.join(".claude-loop", "dashboard", "auth_token.txt")
#: 32 bytes of randomness, URL-safe base64 (43 characters).
TOKEN_BYTES = 32


def default_token_path(root: str) -> str:
    return os.path.join(root, TOKEN_RELATIVE_PATH)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def write_token(path: str, token: str | None = None) -> str:
    """Write a token (a new random one by default) atomically, mode 0600, dir 0700."""
    token = token or new_token()
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (token + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return token


def ensure_token(path: str) -> bool:
    """Create the token file when it is missing; use an existing one as is.

    Returns whether a new token was written.
    """
    if os.path.exists(path):
        return False
    write_token(path)
    return True


class UnsafeTokenFile(Exception):
    """The token file can be read by other users: the daemon refuses to start."""


def token_file_problem(path: str) -> str | None:
    """Why the token file at ``path`` must not be used (group or others may access it), or None.

    A missing file is fine: it is created 0600. We refuse rather than chmod it,
    since a token others could read may already be known: rotate it.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return unsafe_mode_problem(path, mode)


def unsafe_mode_problem(path: str, mode: int) -> str | None:
    if not mode & 0o077:
        return None
    return (
        f"The token file {path} is accessible to other users (mode {stat.S_IMODE(mode):04o}), "
        "so its token may be known to them. Make a new one: `loopdash generate-token` "
        f"(or: chmod 600 {path} if you are sure nobody read it)."
    )


class TokenFile:
    """The current token, re-read from its file whenever the file changes.

    A file that group or others may read holds no token (every request is
    refused) until it is made private or replaced: the daemon refuses to start
    with one, and a rotation must not open the same hole while it runs.
    ``on_unsafe`` hears why, once per such version of the file.
    """

    def __init__(self, path: str, on_unsafe: Callable[[str], None] = lambda problem: None) -> None:
        self.path = path
        self.on_unsafe = on_unsafe
        self._identity: tuple[int, ...] | None = None
        self._token: str | None = None

    def current(self) -> str | None:
        """The token, or None when the file is missing, unreadable, empty or readable by others."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._identity, self._token = None, None
            return None
        # The mode too: a chmod changes neither inode, mtime nor size.
        identity = (*identity_of(st), st.st_mode)
        if identity != self._identity:
            self._identity = identity
            self._token = None
            problem = unsafe_mode_problem(self.path, st.st_mode)
            if problem is not None:
                self.on_unsafe(problem)
            elif stat.S_ISREG(st.st_mode):
                try:
                    with open(self.path, "rb") as f:
                        raw = f.read(4096).decode("utf-8", errors="replace").strip()
                except OSError:
                    raw = ""
                self._token = raw or None
        return self._token

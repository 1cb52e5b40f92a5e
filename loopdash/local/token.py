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

from loopdash.local.smallfile import TOKEN_LIMIT, SmallFileError, read_small_file
from loopdash.loop.filecache import identity_of

TOKEN_RELATIVE_PATH = os.path.join(".claude-loop", "dashboard", "auth_token.txt")
#: 32 bytes of randomness, URL-safe base64 (43 characters).
TOKEN_BYTES = 32


def default_token_path(root: str) -> str:
    return os.path.join(root, TOKEN_RELATIVE_PATH)


#: A multi-project daemon's own folder in its (first) scan folder: token, pidfile, log.
SCAN_DIR = ".loopdash"


def scan_token_path(scan_root: str) -> str:
    """A scanning daemon's token, unless ``--token-file`` says: ``<scan root>/.loopdash/auth_token.txt``."""
    return os.path.join(os.path.abspath(scan_root), SCAN_DIR, "auth_token.txt")


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
    try:
        os.replace(temporary, path)
    except OSError:
        os.unlink(temporary)  # a directory in the way, say: leave nothing behind
        raise
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
    """Why the token file at ``path`` cannot be used, in one sentence, or None.

    Group or others may access it (we refuse rather than chmod it, since a
    token others could read may already be known: rotate it); or it is not a
    regular file (a FIFO, a directory), is far larger than a token, cannot be
    read, or holds no token. A missing file is fine: it is created 0600.
    Never blocks and never reads more than :data:`TOKEN_LIMIT` bytes.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"The token file {path} cannot be read: {e.strerror or e}."
    if stat.S_ISREG(mode):
        problem = unsafe_mode_problem(path, mode)
        if problem is not None:
            return problem
    try:
        raw = read_small_file(path, TOKEN_LIMIT).removeprefix(b"\xef\xbb\xbf")  # an editor's BOM
        token = raw.decode("utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None
    except SmallFileError as e:
        return f"The token file {e}: make a new one with `loopdash generate-token`."
    if not token:
        return f"The token file {path} is empty: make a new one with `loopdash generate-token`."
    return None


def read_token(path: str) -> str:
    """The token in ``path``; OSError (FileNotFoundError, :class:`SmallFileError`) or ValueError (empty).

    Bounded and non-blocking, like every read of the token.
    """
    # An editor may put a byte-order mark first. (removeprefix, not the utf-8-sig
    # codec: a daemon that dropped privileges may not be able to import it.)
    raw = read_small_file(path, TOKEN_LIMIT).removeprefix(b"\xef\xbb\xbf")
    token = raw.decode("utf-8", errors="replace").strip()
    if not token:
        raise ValueError(f"the token file {path} is empty")
    return token


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
    with one, and a rotation must not open the same hole while it runs. So
    does a missing, empty, unreadable or oversized file, a FIFO or a directory.
    ``on_problem`` hears why every request is refused, once per cause: again
    only when the cause changes. ``on_recovered`` hears when a token is back.
    """

    def __init__(
        self,
        path: str,
        on_problem: Callable[[str], None] = lambda problem: None,
        on_recovered: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.on_problem = on_problem
        self.on_recovered = on_recovered
        self._identity: tuple[bytes, int] | None = None
        self._token: str | None = None
        self._problem: str | None = None

    def current(self) -> str | None:
        """The token, or None when the file cannot be used (see the class)."""
        try:
            st = os.stat(self.path)
        except OSError as e:
            self._identity, self._token = None, None
            if isinstance(e, FileNotFoundError):
                self._note(
                    f"The token file {self.path} is missing: create one with `loopdash generate-token`."
                )
            else:
                self._note(f"The token file {self.path} cannot be read: {e.strerror or e}.")
            return None
        # The mode too: a chmod changes neither inode, mtime nor size.
        identity = (identity_of(st), st.st_mode)
        if identity != self._identity:
            self._identity = identity
            self._token = None
            problem = unsafe_mode_problem(self.path, st.st_mode) if stat.S_ISREG(st.st_mode) else None
            if problem is None:
                try:
                    self._token = read_token(self.path)
                except (OSError, ValueError) as e:
                    problem = token_file_problem(self.path) or f"The token file {self.path}: {e}."
            self._note(problem)
        return self._token

    def _note(self, problem: str | None) -> None:
        if problem == self._problem:
            return
        previous, self._problem = self._problem, problem
        if problem is not None:
            self.on_problem(problem)
        elif previous is not None:
            self.on_recovered()

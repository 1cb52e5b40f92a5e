"""Real git repositories for tests, made with the git command line (as a loop makes them)."""

from __future__ import annotations

import os
import subprocess

#: Fixed identities and no user or system configuration: the same repository on every machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Loop Agent",
    "GIT_AUTHOR_EMAIL": "agent@example.invalid",
    "GIT_COMMITTER_NAME": "Loop Agent",
    "GIT_COMMITTER_EMAIL": "agent@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_EDITOR": "true",
}


def git(cwd: str, *args: str, when: float | None = None, check: bool = True) -> str:
    """Run ``git args`` in ``cwd``; ``when``: the author and committer time (seconds since the epoch)."""
    env = dict(os.environ, **GIT_ENV)
    if when is not None:
        stamp = f"@{int(when)} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def init(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def write(path: str, name: str, content: str | bytes) -> None:
    full = os.path.join(path, name)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)


def commit(
    path: str, message: str, files: dict[str, str | bytes], when: float | None = None, add_all: bool = False
) -> str:
    """Write ``files``, stage them (``add_all``: everything), commit; the new commit's sha."""
    for name, content in files.items():
        write(path, name, content)
    git(path, "add", "-A", *([] if add_all else ["--", *files]))
    git(path, "commit", "-q", "-m", message, when=when)
    return git(path, "rev-parse", "HEAD")

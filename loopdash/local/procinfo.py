"""What /proc says about a process: alive or not, its command line, its start time.

Pure reads of /proc (Linux); no signals, no Twisted. A zombie counts as dead:
daemonised twistd is reparented to PID 1, which here may reap it late.
"""

from __future__ import annotations

import os

DEAD_STATES = frozenset({"Z", "X", "x"})


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    text = raw.decode("ascii", errors="replace")
    return text[text.rfind(")") + 2 :].split()


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not missing, not a zombie)."""
    fields = _stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] not in DEAD_STATES


def command_line(pid: int) -> list[str]:
    """The argv of ``pid``; empty for a missing process or a zombie."""
    raw = _read(f"/proc/{pid}/cmdline")
    if not raw:
        return []
    return [arg.decode("utf-8", errors="replace") for arg in raw.rstrip(b"\0").split(b"\0")]


def is_dashboard_command(argv: list[str]) -> bool:
    """Whether an argv is twistd running the loopdash plugin (the start command's own form)."""
    runs_twistd = any(os.path.basename(arg) == "twistd" or "twisted.scripts.twistd" in arg for arg in argv)
    return runs_twistd and "loopdash" in argv


def working_directory(pid: int) -> str | None:
    """The current directory of ``pid``; None when gone or not ours to look at (another user's)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def plugin_arguments(argv: list[str], long: str, short: str | None = None) -> list[str]:
    """Every value a ``twistd ... loopdash`` argv gives the plugin's option ``long``
    (``--root``), in order, as typed: ``--root X``, ``--root=X``, and with ``short``
    (``r``) ``-r X`` and ``-rX``."""
    try:
        arguments = argv[argv.index("loopdash") + 1 :]
    except ValueError:
        return []
    values = []
    names = (long, f"-{short}") if short else (long,)
    for index, argument in enumerate(arguments):
        if argument in names and index + 1 < len(arguments):
            values.append(arguments[index + 1])
        elif argument.startswith(f"{long}="):
            values.append(argument[len(long) + 1 :])
        elif (
            short and argument.startswith(f"-{short}") and not argument.startswith("--") and len(argument) > 2
        ):
            values.append(argument[2:])
    return values


def root_argument(argv: list[str]) -> str:
    """The first ``--root`` a ``twistd ... loopdash`` argv gives the plugin, as typed ("." when absent).

    The first, since ``--root`` is repeatable: the first root is the default
    project, and its folder holds the daemon's files (docs/projects.md).
    """
    roots = plugin_arguments(argv, "--root", "r")
    return roots[0] if roots else "."


def scan_argument(argv: list[str]) -> str | None:
    """The first ``--scan`` a ``twistd ... loopdash`` argv gives the plugin, as typed; None without one."""
    scans = plugin_arguments(argv, "--scan")
    return scans[0] if scans else None


def served_folder(pid: int, folder: str) -> str | None:
    """``folder`` as the dashboard ``pid`` was given it, made absolute; None when it cannot be known.

    A relative folder is resolved against the process's own directory
    (twistd keeps the directory it was started in), which /proc shows only for
    our own processes.
    """
    if os.path.isabs(folder):
        return folder
    cwd = working_directory(pid)
    return None if cwd is None else os.path.normpath(os.path.join(cwd, folder))


def served_root(pid: int, argv: list[str]) -> str | None:
    """The project directory the dashboard ``pid`` serves, absolute; None when it cannot be known."""
    return served_folder(pid, root_argument(argv))


def start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch, or None if it is gone."""
    fields = _stat_fields(pid)
    boot = _boot_time()
    if not fields or len(fields) < 20 or boot is None:
        return None
    # Field 22 of /proc/<pid>/stat (index 19 after pid and name): clock ticks since boot.
    ticks = int(fields[19])
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _boot_time() -> float | None:
    raw = _read("/proc/stat")
    if raw is None:
        return None
    for line in raw.decode("ascii", errors="replace").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None

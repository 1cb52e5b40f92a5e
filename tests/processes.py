"""Real daemons in subprocesses: one way to start, wait for and stop them.

Sync tests that run ``twistd -n loopdash`` (end-to-end, browser, fuzzing)
share these helpers. twistd runs with this interpreter, whatever the venv's
script directory, and every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

#: ``twistd`` with the test's own interpreter.
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
#: Bounds on every wait, in seconds: generous, since the machine is shared.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    describe: Callable[[], str] = lambda: "",
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll ``url``/api/health until it answers 200; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"twistd exited with {process.returncode}:\n{describe()}")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the daemon did not answer within {timeout} s:\n{describe()}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@dataclass
class DaemonProcess:
    """``twistd -n loopdash`` on a fixed port, so a restart comes back at the same URL.

    ``scan``: the daemon gets ``--scan root`` instead of ``--root root``, serving
    every loop project below ``root`` (docs/projects.md), its token in
    ``root/.loopdash/auth_token.txt``.
    """

    root: str
    log_path: str
    port: int = field(default_factory=free_port)
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    scan: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        where = (".loopdash",) if self.scan else (".claude-loop", "dashboard")
        with open(os.path.join(self.root, *where, "auth_token.txt")) as f:
            return f.read().strip()

    def start(self) -> None:
        command = TWISTD + [
            "-n",
            "--pidfile=",
            "loopdash",
            "--port",
            str(self.port),
            "--scan" if self.scan else "--root",
            self.root,
            "--poll-interval",
            "0.2",
            *self.options,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        wait_until_healthy(self.url, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def log(self, tail: int | None = 4000) -> str:
        """The daemon's output: its last ``tail`` characters, or all of it."""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        return text if tail is None else text[-tail:]

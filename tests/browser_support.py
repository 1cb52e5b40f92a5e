"""A real daemon in a subprocess and Debian's Chromium, for tests/test_browser.py.

pytest-twisted runs every test in the reactor's greenlet, so the browser tests
are plain sync tests: the daemon is a ``twistd -n loopdash`` child process and
Playwright's sync API drives ``/usr/bin/chromium`` (never a downloaded browser).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from loopdash.cli.sample import RealRun
from tests import processes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = processes.START_TIMEOUT


def require_chromium() -> str:
    """The Chromium binary; a missing one fails the test loudly (CI installs it, never skip)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get install -y chromium; .ci/run installs it). They never skip.",
            pytrace=False,
        )
    return CHROMIUM


@dataclass
class DaemonProcess(processes.DaemonProcess):
    """The shared twistd subprocess, plus the REST reads a browser test compares against."""

    def wait_for_status(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = START_TIMEOUT
    ) -> dict[str, Any]:
        """Poll /api/status (bounded) until ``condition`` holds; the status that met it."""
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = self.api("/api/status")
            if condition(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"/api/status never met the condition; last: {status}")
            time.sleep(0.2)

    def api(self, path: str) -> Any:
        """An authenticated GET of the REST API: the expected values of a browser test."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())


def current_run(root: str) -> RealRun:
    """The newest run of a sample project, as a RealRun that can add iterations."""
    runs = os.path.join(root, ".claude-loop", "runs")
    newest = sorted(os.listdir(runs))[-1]
    with open(os.path.join(runs, newest, "metrics.json"), encoding="utf-8") as f:
        document = json.load(f)
    started = datetime.fromisoformat(document["started_at"].replace("Z", "+00:00"))
    run = RealRun(root, started, iterations=list(document["iterations"]))
    run.cache_hits = document["cache"]["hits"]
    run.cache_misses = document["cache"]["misses"]
    assert run.run_id == newest, "the sample's run ids are local start times"
    return run


def read_prd(root: str) -> dict[str, Any]:
    with open(os.path.join(root, "prd.json"), encoding="utf-8") as f:
        document: dict[str, Any] = json.load(f)
        return document


class ConsoleWatch:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console.{message.type}: {message.text}")
                if message.type in ("error", "assert")
                else None
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def __iter__(self) -> Iterator[str]:
        return iter(self.errors)


def money(value: float) -> str:
    """The page's money format (dom.js ``money``)."""
    return f"${value:.{3 if abs(value) < 1 else 2}f}"

"""Shared fixtures: loop projects on disk and a real daemon on a real socket."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_twisted

from loopdash.cli.sample import create_sample_project
from tests.browser_support import CHROMIUM_ARGS, ConsoleWatch, require_chromium
from tests.support import RunningDaemon, start_daemon

# A suite started in the background of a non-interactive shell (`cmd &`, nohup)
# inherits SIGINT ignored, and so would every loopdash it starts: the tests that
# stop one with Ctrl-C (SIGINT) then wait for an exit that never comes. With a
# handler here, a child starts with SIGINT at its default, as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: Upper bound of every wait for a page in Chromium, in milliseconds.
WAIT = 20_000
DESKTOP = {"width": 1280, "height": 900}

Page = Any
OpenPage = Callable[..., tuple[Page, ConsoleWatch]]


@pytest.fixture
def sample_root(tmp_path: Any) -> str:
    """A project with three runs (flat shape, real shape finished, real shape current)."""
    root = os.path.join(str(tmp_path), "project")
    create_sample_project(root)
    return root


@pytest.fixture
def empty_root(tmp_path: Any) -> str:
    root = os.path.join(str(tmp_path), "empty")
    os.makedirs(root)
    return root


DaemonFactory = Callable[..., Awaitable[RunningDaemon]]


@pytest_twisted.async_yield_fixture
async def daemon_factory() -> AsyncIterator[DaemonFactory]:
    """Start daemons (in this process, on 127.0.0.1 port 0); all are stopped after the test."""
    from twisted.internet import reactor

    started: list[RunningDaemon] = []

    async def start(root: str, **config: Any) -> RunningDaemon:
        daemon = await start_daemon(reactor, root, **config)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        await daemon.stop()


@pytest_twisted.async_yield_fixture
async def sample_daemon(daemon_factory: DaemonFactory, sample_root: str) -> AsyncIterator[RunningDaemon]:
    yield await daemon_factory(sample_root)


# -- a real browser, one per session, shared by every browser test module ----------------
# (Here, not in a test module: a module that imported the fixture would get a second
# session-wide Playwright, which its sync API refuses to start beside the first.)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium: Any) -> Iterator[OpenPage]:
    """Open a page in a fresh browser context (its own storage); all are closed after the test."""
    contexts: list[Any] = []

    def open_(
        viewport: dict[str, int] = DESKTOP, color_scheme: str = "light", context: Any = None
    ) -> tuple[Page, ConsoleWatch]:
        if context is None:
            context = chromium.new_context(viewport=viewport, color_scheme=color_scheme)
            contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT)
        watch = ConsoleWatch()
        watch.attach(page)
        return page, watch

    yield open_
    for context in contexts:
        context.close()

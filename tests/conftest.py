"""Shared fixtures: loop projects on disk and a real daemon on a real socket."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_twisted

from loopdash.cli.sample import create_sample_project
from tests.support import RunningDaemon, start_daemon


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

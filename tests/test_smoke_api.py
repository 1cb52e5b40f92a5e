"""A first pass over the API on the sample project: the fixture infrastructure works."""

import pytest_twisted

from tests.support import RunningDaemon


@pytest_twisted.ensureDeferred
async def test_health_is_public_and_names_the_contract_version(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/health", authenticated=False)
    assert answer.code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["version"] == "1.0.0"


@pytest_twisted.ensureDeferred
async def test_status_needs_the_token(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/api/status", authenticated=False)
    assert answer.code == 401
    assert answer.json() == {"error": "Missing or invalid Authorization header"}
    answer = await sample_daemon.get("/api/status")
    assert answer.code == 200
    assert answer.json()["total_stories"] == 8

"""schemathesis against a real daemon (a twistd subprocess) from its own OpenAPI document.

Valid and invalid parameters and headers, every operation but the open-ended
stream (its auth and Last-Event-ID handling are fuzzed in
test_hostile_clients.py): no 500, every answer documented and matching its
schema, undocumented methods 405 with Allow, bad credentials refused.
schemathesis uses blocking requests, so the daemon runs in another process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from loopdash.cli.sample import create_sample_project
from tests.contract import the_document
from tests.gitrepos import commit, init
from tests.processes import DaemonProcess

#: Examples per operation and generation mode; with the coverage phase's own
#: cases this keeps the whole module at about 20 s on this machine.
MAX_EXAMPLES = 40

#: Every case run (operation, method sent, status), for the closing count.
calls: list[tuple[str, str, int]] = []


@pytest.fixture(scope="module")
def daemon_process(tmp_path_factory: Any) -> Iterator[DaemonProcess]:
    base = tmp_path_factory.mktemp("fuzz")
    root = os.path.join(str(base), "project")
    create_sample_project(root)
    # A real repository, so that the commit routes read one (issue 21).
    init(root)
    commit(root, "feat: US-001 the sample project", {"notes.txt": "n\n"}, add_all=True)
    commit(root, "fix: US-002 and a binary", {"notes.txt": "m\n", "b.bin": bytes(range(256))})
    # Schemathesis sends hundreds of unauthenticated probes on purpose: no 429s here
    # (test_throttle.py covers throttling).
    daemon = DaemonProcess(root, os.path.join(str(base), "twistd.log"), options=("--auth-failures", "100000"))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def fuzzing_schema() -> Any:
    # The document the daemon serves (test_openapi.py checks they are equal),
    # loaded at import time as @schema.parametrize needs.
    schema = schemathesis.openapi.from_dict(the_document())
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        # Unknown query parameters are ignored by design (cache busters like
        # `?_=123` must not break a page), so they are not "invalid input".
        allow_extra_parameters=False,
    )
    # The stream never ends by design: a blocking client would wait forever.
    return schema.exclude(path="/api/stream", method="GET")


schema = fuzzing_schema()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_never_a_server_error(
    case: Any, daemon_process: DaemonProcess
) -> None:
    # The real token on every case; schemathesis' ignored_auth check also
    # sends the same request without it and with a wrong one.
    response = case.call_and_validate(
        base_url=daemon_process.url, headers={"Authorization": f"Bearer {daemon_process.token}"}, timeout=10
    )
    calls.append((case.operation.label, case.method, response.status_code))


def test_zz_the_fuzzing_ran_and_the_daemon_logged_no_bug(daemon_process: DaemonProcess) -> None:
    """Runs after the fuzz cases (pytest keeps file order): counts and the log."""
    operations = {operation for operation, _, _ in calls}
    methods = {method for _, method, _ in calls}
    statuses = {status for _, _, status in calls}
    print(
        f"\nschemathesis: {len(calls)} cases over {len(operations)} operations, statuses {sorted(statuses)}"
    )
    assert len(operations) == 26  # 14, and 12 per-project routes (issue 19)
    assert len(calls) >= 14 * 10
    # Valid and invalid input reached the daemon: bad values, unknown runs, wrong methods.
    assert {200, 400, 404, 405} <= statuses
    assert {"GET", "POST", "PUT", "DELETE"} <= methods
    assert not any(status >= 500 for status in statuses)
    log = daemon_process.log(tail=None)
    assert "Unhandled error" not in log and "Traceback" not in log, log[-3000:]

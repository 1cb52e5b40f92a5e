"""The Prometheus alerting rules of deploy/: checked, unit-tested, and run for real.

promtool (Debian's ``prometheus`` package, which .ci/run installs) checks the
rule file and runs its unit tests; then a real Prometheus, started on
127.0.0.1 with the repository's scrape job and rules, scrapes a real daemon
watching a stalled loop, and its stalled alert goes pending.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_twisted
import treq
import yaml

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, write_prd
from tests.processes import stop_process
from tests.support import settle, start_daemon

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "prometheus")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool is missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([tool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60)


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_scrape_config_is_valid() -> None:
    checked = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stalled_project(root: str) -> None:
    """A run quiet for 400 s: live by --stale-after (600 s), stalled by --stall-after (300 s)."""
    quiet_since = datetime.now(UTC) - timedelta(seconds=400)
    write_prd(root, SAMPLE_STORIES[:3])
    run = RealRun(root, quiet_since - timedelta(minutes=5))
    run.start()
    run.add_iteration("US-001", "A story", quiet_since, 60000)
    run.write_metrics(quiet_since)
    stamp = quiet_since.timestamp()
    for path in (os.path.join(root, "prd.json"), os.path.join(run.directory, "metrics.json")):
        os.utime(path, (stamp, stamp))


def start_prometheus(
    binary: str, tmp_path: Any, daemon: Any, rules: bool
) -> tuple[subprocess.Popen[bytes], int]:
    """A real Prometheus on 127.0.0.1 with the repository's scrape job pointed at
    ``daemon`` and its token, scraping (and, with ``rules``, evaluating alerts.yml) every second."""
    with open(os.path.join(DEPLOY, "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "loopdash")
    job["scrape_interval"] = "1s"
    job["authorization"]["credentials_file"] = daemon.dashboard.config.token_path
    job["static_configs"] = [{"targets": [daemon.url.removeprefix("http://")], "labels": {"machine": "test"}}]
    config["scrape_configs"] = [job]
    config["global"] = {"evaluation_interval": "1s", "scrape_interval": "1s"}
    if rules:
        config["rule_files"] = [os.path.join(DEPLOY, "alerts.yml")]
    else:
        config.pop("rule_files", None)
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "prometheus.log", "wb"),
    )
    return server, port


@pytest_twisted.ensureDeferred
async def test_a_real_prometheus_sees_a_stalled_loop_and_its_alert_goes_pending(tmp_path: Any) -> None:
    from twisted.internet import reactor

    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is missing: apt-get install prometheus (.ci/run does)"
    root = str(tmp_path / "project")
    os.makedirs(root)
    stalled_project(root)
    daemon = await start_daemon(reactor, root, poll_interval=0.2, use_inotify=False)
    server, port = start_prometheus(binary, tmp_path, daemon, rules=True)
    try:
        deadline = time.monotonic() + 60
        alert: dict[str, Any] | None = None
        targets: Any = None
        while time.monotonic() < deadline and alert is None:
            await settle(reactor, 0.5)
            try:
                response = await treq.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5)
                alerts = json.loads(await treq.content(response))["data"]["alerts"]
                response = await treq.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5)
                targets = json.loads(await treq.content(response))["data"]["activeTargets"]
            except Exception:
                continue  # not up yet
            alert = next((a for a in alerts if a["labels"]["alertname"] == "LoopdashLoopStalled"), None)
        log = (tmp_path / "prometheus.log").read_text(errors="replace")[-2000:]
        assert alert is not None, f"no LoopdashLoopStalled alert; targets: {targets}; log: {log}"
        assert alert["state"] == "pending"  # for: 2m
        assert alert["labels"]["project"] == "claude-loop-p2-features"
        assert alert["labels"]["state"] == "stalled"
        assert targets[0]["health"] == "up"
        # No other loop alert: the loop is neither stopped, failing, nor over budget.
        others = {a["labels"]["alertname"] for a in alerts} - {"LoopdashLoopStalled"}
        assert others == set()
    finally:
        stop_process(server)
        await daemon.stop()


@pytest_twisted.ensureDeferred
async def test_the_grafana_boards_loop_queries_tell_a_multi_project_daemons_projects_apart(
    tmp_path: Any,
) -> None:
    # Issue 19: one Prometheus, one multi-project daemon, two projects whose plans
    # share a name (two worktrees of one repository). Every loop query of the board,
    # run by a real Prometheus, keeps one series per project_id.
    from twisted.internet import reactor

    from tests.test_prometheus import DASHBOARD_JSON, dashboard_queries

    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is missing: apt-get install prometheus (.ci/run does)"
    roots = [str(tmp_path / name) for name in ("left", "right")]
    for root in roots:
        os.makedirs(root)
        stalled_project(root)  # the same plan name in both
    daemon = await start_daemon(
        reactor, roots[0], more_roots=(roots[1],), poll_interval=0.2, use_inotify=False
    )
    server, port = start_prometheus(binary, tmp_path, daemon, rules=False)

    async def query(expr: str) -> list[dict[str, Any]]:
        response = await treq.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=5)
        answer = json.loads(await treq.content(response))
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    try:
        with open(DASHBOARD_JSON, encoding="utf-8") as f:
            board = json.load(f)
        loop_queries = [
            q.replace("$instance", ".*").replace("$project", ".*").replace("$__rate_interval", "1m")
            for q in dashboard_queries(board)
            if "loopdash_loop_" in q and not q.startswith("label_values")
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await settle(reactor, 0.5)
            try:
                if len(await query("loopdash_loop_stories")) == 2:
                    break
            except Exception:
                continue  # not up yet
        names = {s["metric"]["project"] for s in await query("loopdash_loop_stories")}
        assert names == {"claude-loop-p2-features"}  # one name for both...
        apart = 0
        for expr in loop_queries:
            result = await query(expr)
            if "by (le)" in expr:
                continue  # summed over every project on purpose
            assert {s["metric"].get("project_id") for s in result} <= {"left", "right"}, expr
            if "estimated_remaining" in expr or not result:
                continue  # a stalled run has no estimate
            assert {s["metric"]["project_id"] for s in result} == {"left", "right"}, expr  # ...two series
            apart += 1
        assert apart >= 12
    finally:
        stop_process(server)
        await daemon.stop()

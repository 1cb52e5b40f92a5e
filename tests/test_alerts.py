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


@pytest_twisted.ensureDeferred
async def test_a_real_prometheus_sees_a_stalled_loop_and_its_alert_goes_pending(tmp_path: Any) -> None:
    from twisted.internet import reactor

    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is missing: apt-get install prometheus (.ci/run does)"
    root = str(tmp_path / "project")
    os.makedirs(root)
    stalled_project(root)
    daemon = await start_daemon(reactor, root, poll_interval=0.2, use_inotify=False)
    # The repository's scrape job, pointed at this daemon and its token, scraping every second.
    with open(os.path.join(DEPLOY, "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "loopdash")
    job["scrape_interval"] = "1s"
    job["authorization"]["credentials_file"] = daemon.dashboard.config.token_path
    job["static_configs"] = [{"targets": [daemon.url.removeprefix("http://")], "labels": {"machine": "test"}}]
    config["scrape_configs"] = [job]
    config["global"] = {"evaluation_interval": "1s", "scrape_interval": "1s"}
    config["rule_files"] = [os.path.join(DEPLOY, "alerts.yml")]
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "prometheus.log", "wb"),
    )
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
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        await daemon.stop()

"""``loopdash status``: is the dashboard running, where, for how long, which version.

Exit codes are those of LSB init scripts' ``status`` action, so service
managers and shell scripts can branch on them.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from loopdash.cli.common import add_root_argument, add_scan_argument, daemon_files
from loopdash.local.daemon import DEAD, RUNNING, DaemonFiles, fetch_health, inspect

EXIT_RUNNING = 0
EXIT_DEAD_WITH_PIDFILE = 1
EXIT_NOT_RUNNING = 3
#: LSB "status unknown": the process runs but /api/health does not answer.
EXIT_UNKNOWN = 4

HEALTH_TIMEOUT = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_argument(parser)
    add_scan_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


def format_duration(seconds: float) -> str:
    """``3d 4h 5m 6s`` style, largest unit first, zero units left out (``0s`` for none)."""
    remaining = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    if remaining or not parts:
        parts.append(f"{remaining}s")
    return " ".join(parts)


def gather(files: DaemonFiles) -> tuple[int, dict[str, Any]]:
    """The exit code and the facts reported, as one JSON-ready dict."""
    found = inspect(files)
    report: dict[str, Any] = {
        "state": found.state,
        "pid": found.pid,
        "url": found.url,
        "pidfile": files.pidfile,
        "log": files.logfile,
        # The folder a scanning dashboard serves the projects of (--scan); None: one project's.
        "scan": files.root if files.scan else None,
    }
    if found.state == DEAD:
        report["reason"] = found.reason
        return EXIT_DEAD_WITH_PIDFILE, report
    if found.state != RUNNING:
        return EXIT_NOT_RUNNING, report
    report["uptime_s"] = (
        None if found.started_at is None else max(0.0, round(time.time() - found.started_at, 1))
    )
    if found.url is None:
        report["reason"] = "started without `loopdash start`: URL unknown"
        return EXIT_RUNNING, report
    try:
        health = fetch_health(found.url, HEALTH_TIMEOUT)
    except (OSError, ValueError) as e:
        report["state"] = "not answering"
        report["reason"] = f"{found.url}/api/health: {e}"
        return EXIT_UNKNOWN, report
    report["health"] = health.get("status")
    report["version"] = health.get("version")
    report["server_version"] = health.get("server_version")
    return EXIT_RUNNING, report


def describe(report: dict[str, Any]) -> list[str]:
    state = report["state"]
    if state == "stopped":
        return ["loopdash dashboard: not running"]
    if state == DEAD:
        return [f"loopdash dashboard: not running, stale pidfile {report['pidfile']}: {report['reason']}"]
    lines = [f"loopdash dashboard: {state} (pid {report['pid']})"]
    if report.get("scan"):
        lines.append(f"  scanning: {report['scan']}")
    if report.get("url"):
        lines.append(f"  URL:     {report['url']}")
    if report.get("uptime_s") is not None:
        lines.append(f"  uptime:  {format_duration(report['uptime_s'])}")
    if report.get("version"):
        lines.append(f"  version: API {report['version']}, server {report.get('server_version')}")
    if report.get("reason"):
        lines.append(f"  note:    {report['reason']}")
    lines.append(f"  log:     {report['log']}")
    return lines


def run(args: argparse.Namespace) -> int:
    code, report = gather(daemon_files(args))
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print("\n".join(describe(report)))
    return code

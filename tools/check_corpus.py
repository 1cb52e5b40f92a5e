"""Read a corpus of real loop files the way a new user would, and print one row per file.

    python tools/check_corpus.py DIR [--no-daemon] [--json OUT]

``DIR`` holds loop files committed by real projects and an ``INDEX.md`` whose
table gives, for each file, the path it was committed under (the layout of
``shared/realdata``). For each file this builds a project in a temporary
directory with the file at that path, reads it in-process with
:class:`loopdash.loop.project.Project`, then starts a real ``twistd -n loopdash``
on it (token file outside the project, so the project stays as committed) and
asks ``/api/health``, ``/api/status``, ``/api/stories`` and ``/api/logs``.
A row says: the family detected, the stories and log entries served, the
errors (files reported unparseable, non-200 answers, tracebacks in the daemon's
log) and how long the first ``/api/logs`` took. Nothing here is a test; the
files are read, never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from loopdash.loop.project import Project

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*`([^`]+)`\s*\|")
START_TIMEOUT = 30.0


@dataclass
class Row:
    number: str
    path: str
    family: str = "-"
    stories: int | str = "-"
    entries: int | str = "-"
    errors: list[str] = field(default_factory=list)
    logs_ms: float | None = None


def corpus(directory: str) -> list[tuple[str, str, str]]:
    """(number, file name, committed path) for each row of INDEX.md's table."""
    rows = []
    with open(os.path.join(directory, "INDEX.md"), encoding="utf-8") as f:
        for line in f:
            match = ROW.match(line)
            if match and os.path.isfile(os.path.join(directory, match.group(2))):
                rows.append((match.group(1), match.group(2), match.group(4)))
    return rows


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def read_in_process(root: str, row: Row) -> None:
    problems: list[str] = []
    project = Project(root, report=lambda path, why: problems.append(f"{os.path.basename(path)}: {why}"))
    snapshot = project.snapshot()
    source = getattr(project, "source", None)
    row.family = getattr(source, "family", "claude-loop (only)")
    prd = snapshot.prd.value
    row.stories = len(prd.stories) if prd is not None else 0
    row.entries = snapshot.log.total
    row.errors.extend(f"reader: {p}" for p in problems)


def read_through_daemon(root: str, work: str, row: Row) -> None:
    port = free_port()
    token_file = os.path.join(work, "token.txt")
    log_path = os.path.join(work, "daemon.log")
    command = TWISTD + ["-n", "--pidfile=", "loopdash", "--port", str(port), "--root", root]
    command += ["--token-file", token_file, "--no-inotify"]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                row.errors.append("daemon did not start")
                return
            try:
                if get(url + "/api/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        with open(token_file) as f:
            token = f.read().strip()
        started = time.perf_counter()
        code, logs = get(url + "/api/logs?limit=1000", token)
        row.logs_ms = round((time.perf_counter() - started) * 1000, 1)
        answers = {"/api/logs": (code, logs)}
        for path in ("/api/health", "/api/status", "/api/stories"):
            answers[path] = get(url + path, token)
        for path, (code, _) in answers.items():
            if code != 200:
                row.errors.append(f"{path} answered {code}")
        health = answers["/api/health"][1] or {}
        if isinstance(health.get("source"), dict):
            row.family = str(health["source"].get("family"))
        stories = answers["/api/stories"][1]
        if stories is not None and stories.get("total") != row.stories:
            row.errors.append(f"daemon stories {stories.get('total')} != reader {row.stories}")
        if logs is not None and logs.get("total") != row.entries:
            row.errors.append(f"daemon entries {logs.get('total')} != reader {row.entries}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with open(log_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    tracebacks = text.count("Traceback")
    if tracebacks:
        row.errors.append(f"{tracebacks} traceback(s) in the daemon log")
    for line in text.splitlines():
        if "Cannot read" in line:
            said = line.split("Cannot read", 1)[1].strip().replace(root + os.sep, "")
            row.errors.append("daemon log: " + said[:100])


def check(directory: str, daemon: bool) -> list[Row]:
    rows = []
    for number, name, committed in corpus(directory):
        row = Row(number, committed)
        with tempfile.TemporaryDirectory(prefix=f"corpus-{number}-") as work:
            root = os.path.join(work, "project")
            target = os.path.join(root, committed)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(directory, name), target)
            try:
                read_in_process(root, row)
            except Exception as e:
                row.errors.append(f"reader raised {type(e).__name__}: {e}")
            if daemon:
                read_through_daemon(root, work, row)
        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| NN | path | family | stories | entries | logs ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        errors = "; ".join(r.errors) or "-"
        ms = "-" if r.logs_ms is None else f"{r.logs_ms:.0f}"
        lines.append(
            f"| {r.number} | `{r.path}` | {r.family} | {r.stories} | {r.entries} | {ms} | {errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--no-daemon", action="store_true", help="read in-process only")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    rows = check(args.directory, daemon=not args.no_daemon)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

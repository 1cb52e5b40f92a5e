"""``loopdash watch --all``: the pure table, and the command in a pipe and a pseudo-terminal
against a real two-project daemon."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest_twisted

from loopdash.cli.sample import create_sample_project
from loopdash.client import Disconnected
from loopdash.client.events import Connected, ProjectAdded, ProjectRemoved, ProjectUpdated
from loopdash.client.fleet import Fleet, condition, fold, ordered, render_table, with_rows
from loopdash.client.models import ProjectRow
from tests.client_support import LiveLoop
from tests.test_client_projects import ROW
from tests.test_watch import spawn


def row(ident: str, **fields: Any) -> ProjectRow:
    return ProjectRow.from_json(dict(ROW, id=ident, name=ident, failed_iterations=0) | fields)


def test_attention_first_stalled_failed_stopped_running_finished_idle() -> None:
    rows = [
        row("idle", state="idle", is_running=False),
        row("done", state="finished"),
        row("ok", state="running"),
        row("quit", state="stopped"),
        row("broke", state="running", failed_iterations=2),
        row("hung", state="stalled", failed_iterations=1),
    ]
    fleet = with_rows(Fleet("u"), rows, 0.0)
    assert [r.id for r, _ in ordered(fleet)] == ["hung", "broke", "quit", "ok", "done", "idle"]
    assert [condition(r) for r, _ in ordered(fleet)] == [
        "stalled",
        "failed",
        "stopped",
        "running",
        "finished",
        "idle",
    ]


def test_an_unreachable_remote_says_so_and_keeps_its_last_row() -> None:
    down = row("box~api", machine="box", reachable=False, state="unknown", quiet_for=30)
    screen = render_table(with_rows(Fleet("u", trouble=None), [down], 0.0), 100.0, 200)
    line = next(line for line in screen if "box: box~api" in line)
    assert line.startswith("unreachable") and "4/10" in line and "30 s" in line  # quiet does not move


def test_the_table_has_one_line_per_loop_and_moves_quiet_times_on() -> None:
    fleet = with_rows(Fleet("http://d", trouble=None), [row("a", quiet_for=10), row("b", state="idle")], 0.0)
    screen = render_table(fleet, 50.0, 200)
    assert screen[0] == "loopdash  http://d  2 loops  (1 running · 1 idle)"
    assert screen[1].split() == ["STATE", "PROJECT", "PROGRESS", "STORIES", "STORY", "COST", "QUIET"]
    assert screen[2].split() == [
        "running",
        "a",
        "[####......]",
        "40.0%",
        "4/10",
        "US-005",
        "$1.23",
        "1",
        "min",
    ]
    assert screen[3].startswith("idle") and screen[-1] == "Ctrl-C to quit"
    assert all(len(line) <= 30 for line in render_table(fleet, 50.0, 30))


def test_project_events_add_update_and_remove_lines() -> None:
    fleet = with_rows(Fleet("u"), [row("a")], 0.0)
    fleet = fold(fleet, Connected(server_version=None, api_version=None), 1.0)
    assert fleet.trouble is None
    fleet = fold(fleet, ProjectAdded(row=row("b", state="stalled")), 2.0)
    fleet = fold(fleet, ProjectUpdated(row=row("a", state="finished")), 3.0)
    assert [(r.id, condition(r)) for r, _ in ordered(fleet)] == [("b", "stalled"), ("a", "finished")]
    fleet = fold(fleet, ProjectRemoved(project_id="b"), 4.0)
    assert list(fleet.rows) == ["a"]
    fleet = fold(fleet, Disconnected("connection refused", 1, 3.0), 5.0)
    assert fleet.trouble is not None and "connection refused" in fleet.trouble
    assert render_table(fleet, 5.0, 200)[-1] == fleet.trouble


# -- the command against a real daemon -----------------------------------------------------


async def two_projects(daemon_factory: Any, tmp_path: Any) -> tuple[Any, LiveLoop, list[str]]:
    sample = os.path.join(str(tmp_path), "sample")
    create_sample_project(sample)
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(sample, more_roots=(loop.root,), poll_interval=0.05, stale_after=0.001)
    args = ["--all", "--url", daemon.url, "--token-file", daemon.dashboard.config.token_path]
    return daemon, loop, args


@pytest_twisted.ensureDeferred
async def test_all_once_json_prints_the_projects_answer(daemon_factory: Any, tmp_path: Any) -> None:
    daemon, _, args = await two_projects(daemon_factory, tmp_path)
    child = spawn([*args, "--once", "--json"])
    assert await child.exit_code() == 0, child.stderr
    printed, served = json.loads(child.output), (await daemon.get("/api/projects")).json()
    assert (
        [p["id"] for p in printed["projects"]] == [p["id"] for p in served["projects"]] == ["live", "sample"]
    )
    assert printed["default"] == served["default"] == "sample"


@pytest_twisted.ensureDeferred
async def test_all_in_a_pipe_prints_every_row_then_a_line_per_change(
    daemon_factory: Any, tmp_path: Any
) -> None:
    _, loop, args = await two_projects(daemon_factory, tmp_path)
    child = spawn(args)
    at = await child.wait_for(rb"Z project live: \S+ 0\.0% \(0/8 stories\)[^\n]*\n")
    await child.wait_for(rb"Z project sample: \S+ 75\.0% \(6/8 stories\)[^\n]*\n")
    loop.pass_story(0)
    await child.wait_for(rb"Z project live updated: \S+ 12\.5% \(1/8 stories\)", at)
    child.transport.signalProcess("INT")  # type: ignore[union-attr]
    assert await child.exit_code() == 0
    assert b"\x1b[" not in child.output and b"Traceback" not in child.stderr + child.output


@pytest_twisted.ensureDeferred
async def test_all_on_a_terminal_redraws_the_table_in_place(daemon_factory: Any, tmp_path: Any) -> None:
    daemon, loop, args = await two_projects(daemon_factory, tmp_path)
    served = [ProjectRow.from_json(p) for p in (await daemon.get("/api/projects")).json()["projects"]]
    expected = [r.name for r, _ in ordered(with_rows(Fleet("u"), served, 0.0))]
    child = spawn(args, tty=True)
    at = await child.wait_for(rb"STATE +PROJECT[^\x1b]*Ctrl-C to quit")
    screen = child.output[child.output.rindex(b"\x1b[J", 0, at) : at].decode(errors="replace")
    lines = screen[len("\x1b[J") :].split("\r\n")
    assert lines[0].startswith("loopdash  http://127.0.0.1:") and "2 loops" in lines[0]
    # Attention first, as the rows the daemon serves say.
    assert [name in line for name, line in zip(expected, lines[2:4], strict=True)] == [True, True], lines
    live = next(r.name for r in served if r.id == "live")
    loop.pass_story(0)
    pattern = re.escape(live.encode()) + rb" +\[#?\.+\] +12\.5% +1/8"
    await child.wait_for(rb"\x1b\[\d+A\r\x1b\[J[^\x1b]*" + pattern, at)
    child.transport.write(b"\x03")  # type: ignore[union-attr]
    assert await child.exit_code() == 0
    assert child.output.rstrip().endswith(b"\x1b[?25h")

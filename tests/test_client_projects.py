"""DashboardClient and a multi-project daemon: ``projects()``, ``project(id)`` and the combined stream.

The daemon is real (in this process, 127.0.0.1 port 0) and serves two
``--root`` projects; the pure decoding of the project events is checked on its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_twisted

from loopdash.cli.sample import create_sample_project
from loopdash.client import DashboardClient, NotFound
from loopdash.client.events import (
    Connected,
    ProjectAdded,
    ProjectRemoved,
    ProjectUpdated,
    StatusUpdate,
    StoryUpdated,
    decode_event,
)
from loopdash.client.models import MalformedResponse, ProjectRow
from loopdash.server.service import notifications_path
from tests.client_support import STATUS, LiveLoop, take, take_until, within
from tests.support import RunningDaemon

ROW = {
    "id": "work--api",
    "name": "API server",
    "path": "work/api",
    "family": "claude-loop",
    "machine": None,
    "reachable": True,
    "state": "running",
    "quiet_for": 12,
    "is_running": True,
    "progress_pct": 40.0,
    "completed_stories": 4,
    "total_stories": 10,
    "current_story": {"id": "US-005", "title": "Login form", "status": "in_progress"},
    "cost_so_far": 1.23,
    "failed_iterations": 1,
    "last_update": "2026-12-03T09:12:00Z",
    "url": None,
}


# -- decoding the project events (pure) ---------------------------------------------------


def message(kind: str, data: Any, **top: Any) -> str:
    return json.dumps({"type": kind, "data": data, "timestamp": "2026-12-03T09:12:00Z", **top})


def test_project_added_and_updated_carry_a_typed_row() -> None:
    added = decode_event(message("project_added", ROW, project="work--api"), "b-7")
    updated = decode_event(message("project_updated", dict(ROW, state="stalled"), project="work--api"), None)
    assert isinstance(added, ProjectAdded) and added.id == "b-7" and added.project == "work--api"
    assert added.row == ProjectRow.from_json(ROW) and added.row.to_json() == ROW
    assert added.row.current_story is not None and added.row.current_story.title == "Login form"
    # A daemon from before the url field: its rows decode, with no url.
    assert ProjectRow.from_json({k: v for k, v in ROW.items() if k != "url"}).url is None
    assert isinstance(updated, ProjectUpdated) and updated.row.state == "stalled"
    # The project field is read, not left in extra.
    assert added.extra == {} and updated.extra == {}


def test_project_removed_names_the_project() -> None:
    removed = decode_event(message("project_removed", {"id": "work--api"}, project="work--api"), "b-8")
    assert removed == ProjectRemoved(
        project_id="work--api", id="b-8", timestamp="2026-12-03T09:12:00Z", project="work--api"
    )


def test_every_event_of_a_multi_project_daemon_says_its_project() -> None:
    status = STATUS
    tagged = decode_event(message("status_update", status, project="work--api"), "b-2")
    plain = decode_event(message("status_update", status), "b-2")
    assert isinstance(tagged, StatusUpdate) and tagged.project == "work--api"
    assert isinstance(plain, StatusUpdate) and plain.project is None


def test_a_remote_row_keeps_its_machine_and_reachability() -> None:
    remote = dict(ROW, id="box~api", machine="box", reachable=False, state="unknown")
    row = decode_event(message("project_updated", remote, project="box~api"), None)
    assert isinstance(row, ProjectUpdated)
    assert (row.row.machine, row.row.reachable, row.row.state) == ("box", False, "unknown")


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("project_added", {"id": "x"}),
        ("project_updated", dict(ROW, reachable="yes")),
        ("project_removed", {"name": "x"}),
        ("project_removed", ["x"]),
    ],
)
def test_a_project_event_that_breaks_the_contract_is_malformed(kind: str, data: Any) -> None:
    with pytest.raises(MalformedResponse, match=kind):
        decode_event(message(kind, data), None)


# -- against a real two-project daemon -------------------------------------------------------


@dataclass
class Fleet:
    daemon: RunningDaemon
    client: DashboardClient
    loop: LiveLoop


@pytest_twisted.async_yield_fixture
async def fleet(daemon_factory: Any, tmp_path: Any) -> AsyncIterator[Fleet]:
    """Two --root projects: ``sample`` (the default, three runs) and ``live`` (a run at work)."""
    sample = os.path.join(str(tmp_path), "sample")
    create_sample_project(sample)
    loop = LiveLoop.create(os.path.join(str(tmp_path), "live"))
    daemon = await daemon_factory(sample, more_roots=(loop.root,), poll_interval=0.2)
    client = DashboardClient(daemon.url, daemon.token, timeout=5.0, jitter=lambda: 0.0)
    yield Fleet(daemon, client, loop)
    await client.close()


def without_clock(row: dict[str, Any]) -> dict[str, Any]:
    # quiet_for moves with the clock between two fetches; every other field must match.
    return {key: value for key, value in row.items() if key != "quiet_for"}


@pytest_twisted.ensureDeferred
async def test_projects_are_typed_rows_mirroring_the_servers_json(fleet: Fleet) -> None:
    listed = await within(fleet.client.projects())
    raw = (await fleet.daemon.get("/api/projects")).json()
    assert [row.id for row in listed.projects] == ["live", "sample"] == [r["id"] for r in raw["projects"]]
    assert listed.total == 2 and listed.default == raw["default"] == "sample"
    assert [without_clock(row.to_json()) for row in listed.projects] == [
        without_clock(r) for r in raw["projects"]
    ]
    live = listed.projects[0]
    assert isinstance(live, ProjectRow) and live.machine is None and live.reachable is True
    assert live.total_stories == len(fleet.loop.stories) and live.completed_stories == 0


@pytest_twisted.ensureDeferred
async def test_a_bound_client_answers_for_its_project_only(fleet: Fleet) -> None:
    live = fleet.client.project("live")
    assert live.project_id == "live" and fleet.client.project_id is None
    status, stories, runs = (
        await within(live.status()),
        await within(live.stories()),
        await within(live.runs()),
    )
    raw_status = (await fleet.daemon.get("/api/projects/live/status")).json()
    # Fields that do not move with the clock between the two fetches.
    for key in ("run_id", "total_stories", "completed_stories", "is_running"):
        assert status.to_json().get(key) == raw_status.get(key), key
    # The current story's elapsed_ms does move: the status is kept per second, and
    # the two fetches may fall on both sides of one (CI at 5d5ca0f: 300813 against
    # 300818). The story is the same, and the later fetch is no earlier.
    story, raw_story = dict(status.to_json()["current_story"]), dict(raw_status["current_story"])
    elapsed, raw_elapsed = story.pop("elapsed_ms"), raw_story.pop("elapsed_ms")
    assert story == raw_story and story["id"]
    assert 0 <= raw_elapsed - elapsed <= 5000
    assert status.total_stories == len(fleet.loop.stories)
    assert stories.to_json() == (await fleet.daemon.get("/api/projects/live/stories")).json()
    assert [r.run_id for r in runs] == [
        r["run_id"] for r in (await fleet.daemon.get("/api/projects/live/runs")).json()
    ]
    # The plain routes still serve the default project, which is another one.
    default = await within(fleet.client.stories())
    assert default.to_json() == (await fleet.daemon.get("/api/stories")).json()
    assert (default.completed, stories.completed) == (6, 0)
    # Health and the list are the daemon's, whatever the binding.
    assert (await within(live.projects())).total == 2
    assert (await within(live.health())).status == "ok"


@pytest_twisted.ensureDeferred
async def test_an_unknown_project_is_not_found_with_the_servers_message(fleet: Fleet) -> None:
    ghost = fleet.client.project("ghost")
    with pytest.raises(NotFound, match="Project not found: ghost"):
        await within(ghost.status())
    items = ghost.stream()
    with pytest.raises(NotFound, match="Project not found: ghost"):
        await within(items.__anext__())


@pytest_twisted.ensureDeferred
async def test_a_bound_stream_carries_its_projects_events(fleet: Fleet) -> None:
    items = fleet.client.project("live").stream()
    connected, status = await take(items, 2)
    assert isinstance(connected, Connected)
    assert isinstance(status, StatusUpdate) and status.project == "live"
    assert status.status.total_stories == len(fleet.loop.stories)
    story_id = fleet.loop.pass_story(0)
    got = await take_until(items, lambda i: isinstance(i, StoryUpdated) and i.story.id == story_id)
    await items.aclose()  # type: ignore[attr-defined]
    tagged = [i for i in got if hasattr(i, "project")]
    assert tagged and all(i.project == "live" for i in tagged)  # type: ignore[union-attr]
    # The project events go to the combined stream only.
    assert not [i for i in got if isinstance(i, (ProjectAdded, ProjectUpdated, ProjectRemoved))]


@pytest_twisted.ensureDeferred
async def test_the_combined_stream_updates_adds_and_removes_projects(fleet: Fleet, tmp_path: Any) -> None:
    items = fleet.client.stream()
    await take(items, 2)
    fleet.loop.pass_story(0)
    got = await take_until(items, lambda i: isinstance(i, ProjectUpdated) and i.row.id == "live")
    updated = got[-1]
    assert isinstance(updated, ProjectUpdated) and updated.project == "live"
    assert updated.row.completed_stories == 1 and updated.row.total_stories == len(fleet.loop.stories)
    # Each project's own events are there too, tagged.
    assert any(isinstance(i, StoryUpdated) and i.project == "live" for i in got)

    third = os.path.join(str(tmp_path), "third")
    create_sample_project(third)
    dashboard = fleet.daemon.dashboard
    dashboard.projects.add(dashboard.bundles.make("third", third, "third", notifications_path(third)))
    got = await take_until(items, lambda i: isinstance(i, ProjectAdded))
    added = got[-1]
    assert isinstance(added, ProjectAdded) and added.project == "third"
    assert added.row.id == "third" and added.row.total_stories == 8
    assert (await within(fleet.client.project("third").stories())).total == 8

    dashboard.projects.remove("third")
    got = await take_until(items, lambda i: isinstance(i, ProjectRemoved))
    await items.aclose()  # type: ignore[attr-defined]
    removed = got[-1]
    assert isinstance(removed, ProjectRemoved) and (removed.project_id, removed.project) == ("third", "third")
    with pytest.raises(NotFound):
        await within(fleet.client.project("third").status())

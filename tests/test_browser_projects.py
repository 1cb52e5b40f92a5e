"""The overview of a multi-project daemon in a real Chromium (docs/projects.md, docs/web-page.md).

A ``twistd -n loopdash`` subprocess given several ``--root``s serves small loop
projects written here (invented stories, one state each). What the page must
show is read from the daemon's own ``/api/projects`` and per-project routes,
so nothing is a hard-coded answer; the states the fixture sets up are asserted
on the daemon's answers too, so the order tested is the one the issue asks for.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopdash.cli.sample import RealRun, write_in_place, write_prd
from tests.browser_support import DaemonProcess, money
from tests.conftest import WAIT, OpenPage, Page

#: The order a loop needs attention in (overview.js ``attention``).
RANK = {"stalled": 0, "stopped": 2, "running": 3, "finished": 4, "idle": 5, "unreachable": 6}


def expect(locator: Any) -> Any:
    """Playwright's expect, bounded by WAIT (its default, 5 s, is short on a shared machine)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT)
    return playwright_expect(locator)


def stories(prefix: str, total: int, done: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{n:03d}",
            "title": f"{prefix.title()} story number {n}",
            "description": f"Something the {prefix} loop builds.",
            "acceptanceCriteria": ["It works"],
            "priority": n,
            "passes": n <= done,
            "notes": "",
            "dependencies": [],
        }
        for n in range(1, total + 1)
    ]


def make_loop(
    root: str,
    name: str,
    prefix: str,
    total: int,
    done: int,
    quiet: float | None = None,
    failures: int = 0,
    finished: bool = False,
) -> None:
    """A claude-loop project: ``prd.json`` named ``name``, and a current run unless ``quiet`` is None.

    ``quiet``: seconds since the run's last activity (its files' times are set
    back so the daemon judges it running, stalled or stopped by its own rules).
    """
    os.makedirs(root, exist_ok=True)
    write_prd(root, stories(prefix, total, done), project=name)
    write_in_place(os.path.join(root, "progress.txt"), f"# claude-loop progress\n\nProject: {name}\n\n")
    if quiet is None:
        return
    now = datetime.now(UTC)
    started = now - timedelta(hours=2)
    run = RealRun(root, started)
    run.start()
    for n in range(1, done + 1):
        run.add_iteration(f"{prefix}-{n:03d}", f"story {n}", started + timedelta(minutes=n), 60_000)
    for _ in range(failures):
        run.add_iteration(
            f"{prefix}-{done + 1:03d}", "next", started + timedelta(minutes=50), 60_000, "failure"
        )
    last = now - timedelta(seconds=quiet)
    run.write_metrics(last)
    if finished:
        run.write_summary(last)
    back = last.timestamp()
    for folder, _, files in os.walk(os.path.join(root, ".claude-loop")):
        for file in files:
            os.utime(os.path.join(folder, file), (back, back))
    os.utime(os.path.join(root, "progress.txt"), (started.timestamp(), started.timestamp()))


@pytest.fixture
def fleet_root(tmp_path: Any) -> str:
    """Five loops, one in each state, two of them running (one with failed iterations)."""
    root = os.path.join(str(tmp_path), "loops")
    make_loop(os.path.join(root, "api"), "Api server", "api", 6, 2, quiet=5)
    make_loop(os.path.join(root, "web"), "Web shop", "web", 5, 3, quiet=5, failures=2)
    make_loop(os.path.join(root, "team", "docs"), "Docs site", "docs", 4, 1, quiet=400)
    make_loop(os.path.join(root, "cli"), "Command line", "cli", 3, 1, quiet=7200)
    make_loop(os.path.join(root, "lib"), "Library", "lib", 2, 2, quiet=30, finished=True)
    make_loop(os.path.join(root, "new"), "New idea", "idea", 3, 0)
    return root


#: The folders of the fleet's loops below its root.
FOLDERS = ("api", "web", "team/docs", "cli", "lib", "new")


def roots_daemon(fleet_root: str, log: str) -> DaemonProcess:
    """A daemon given each loop of the fleet as a --root (no --scan): a multi-project daemon too."""
    roots = [os.path.join(fleet_root, folder) for folder in FOLDERS]
    return DaemonProcess(roots[0], log, options=tuple(arg for root in roots[1:] for arg in ("--root", root)))


@pytest.fixture
def fleet(fleet_root: str, tmp_path: Any) -> Iterator[DaemonProcess]:
    """A daemon given each loop as a --root: a multi-project daemon."""
    process = roots_daemon(fleet_root, os.path.join(str(tmp_path), "twistd.log"))
    process.start()
    yield process
    process.stop()


def wait_for_projects(daemon: DaemonProcess, count: int) -> dict[str, Any]:
    """Poll /api/projects (bounded) until it lists ``count`` projects; that answer."""
    deadline = time.monotonic() + WAIT / 1000
    while True:
        listed: dict[str, Any] = daemon.api("/api/projects")
        if listed["total"] == count:
            return listed
        assert time.monotonic() < deadline, f"/api/projects never listed {count} projects: {listed}"
        time.sleep(0.1)


def state_of(row: dict[str, Any]) -> str:
    return "unreachable" if not row["reachable"] or row["state"] == "unknown" else row["state"] or "idle"


def attention_order(rows: list[dict[str, Any]]) -> list[str]:
    """The ids in the order the overview must show them (docs/web-page.md)."""

    def key(row: dict[str, Any]) -> tuple[int, str, str]:
        state = state_of(row)
        failing = state not in ("stalled", "unreachable") and row["failed_iterations"]
        rank = 1 if failing else RANK[state]
        return rank, row["name"].lower(), row["id"]

    return [row["id"] for row in sorted(rows, key=key)]


def title_counts(rows: list[dict[str, Any]]) -> str:
    order = ["running", "stalled", "stopped", "unreachable", "finished", "idle"]
    counts = {state: sum(1 for row in rows if state_of(row) == state) for state in order}
    return " · ".join(f"{counts[state]} {state}" for state in order if counts[state]) + " · loopdash"


def card_ids(page: Page, visible_only: bool = False) -> list[str]:
    selector = "#project-list > li" + (":not([hidden])" if visible_only else "")
    ids: list[str] = page.eval_on_selector_all(selector, "items => items.map(li => li.dataset.projectId)")
    return ids


def sign_in(page: Page, daemon: DaemonProcess, route: str = "") -> None:
    """Sign in from a #token= link; with ``route``, then load that address afresh."""
    page.goto(f"{daemon.url}/#token={daemon.token}")
    expect(page.locator("#connection-state")).to_have_text("Live")
    if route:
        page.goto(f"{daemon.url}/{route}")
        page.reload()
        expect(page.locator("#connection-state")).to_have_text("Live")


def test_the_overview_shows_one_card_per_loop_attention_first(
    fleet: DaemonProcess, open_page: OpenPage, tmp_path: Any
) -> None:
    listed = wait_for_projects(fleet, 6)
    rows = {row["name"]: row for row in listed["projects"]}
    # The fixture's states, as the daemon judges them: the order below is the issue's.
    assert {name: state_of(row) for name, row in rows.items()} == {
        "Api server": "running",
        "Web shop": "running",
        "Docs site": "stalled",
        "Command line": "stopped",
        "Library": "finished",
        "New idea": "idle",
    }
    assert rows["Web shop"]["failed_iterations"] == 2
    page, console = open_page()
    sign_in(page, fleet)
    expect(page.locator("#overview-view")).to_be_visible()
    expect(page.locator("#dashboard-view")).to_be_hidden()
    expected = attention_order(listed["projects"])
    assert expected[:3] == [rows["Docs site"]["id"], rows["Web shop"]["id"], rows["Command line"]["id"]]
    expect(page.locator("#project-list > li")).to_have_count(6)
    assert card_ids(page) == expected
    for row in listed["projects"]:
        card = page.locator(f"#project-list > li[data-project-id='{row['id']}']")
        expect(card).to_have_attribute("data-state", state_of(row))
        link = card.get_by_role("link")
        expect(link).to_have_attribute("href", f"#/p/{row['id']}")
        expect(link).to_contain_text(row["name"])
        expect(link).to_contain_text(state_of(row).title())  # the state in words, not colour alone
        expect(link).to_contain_text(f"{row['completed_stories']} of {row['total_stories']} stories")
        expect(link).to_contain_text(f"Cost {money(row['cost_so_far'])}")
        expect(link).to_contain_text(row["path"])
        story = row["current_story"]
        expect(link).to_contain_text(story["id"] if story else "No current story")
        if row["quiet_for"] is None:
            expect(link).to_contain_text("no activity yet")
        else:
            expect(link).to_contain_text("quiet for")
    expect(page.locator(f"#project-list > li[data-project-id='{rows['Web shop']['id']}']")).to_contain_text(
        "2 failed iterations"
    )
    assert page.title() == title_counts(listed["projects"])
    assert page.title().startswith("2 running · 1 stalled · 1 stopped · 1 finished · 1 idle")
    page.screenshot(path=os.path.join(str(tmp_path), "overview.png"), full_page=True)
    assert list(console) == []


def test_the_filter_keeps_the_cards_whose_name_id_or_path_match(
    fleet: DaemonProcess, open_page: OpenPage
) -> None:
    listed = wait_for_projects(fleet, 6)
    page, console = open_page()
    sign_in(page, fleet)
    expect(page.locator("#project-list > li")).to_have_count(6)
    box = page.get_by_label("Find a loop")
    for text in ("web SHOP", "team--docs", "team/docs", "zzz-nothing"):
        box.fill(text)
        needle = text.lower()
        wanted = [
            row["id"]
            for row in listed["projects"]
            if any(needle in (row[field] or "").lower() for field in ("name", "id", "path"))
        ]
        expected = [ident for ident in attention_order(listed["projects"]) if ident in wanted]
        expect(page.locator("#project-list > li:not([hidden])")).to_have_count(len(expected))
        assert card_ids(page, visible_only=True) == expected, text
        if expected:
            expect(page.locator("#projects-summary")).to_contain_text(f"Showing {len(expected)} of 6")
    assert card_ids(page, visible_only=True) == []
    box.fill("")
    expect(page.locator("#project-list > li:not([hidden])")).to_have_count(6)
    # Keyboard: the filter, then the first card, reached with Tab; Enter opens it.
    box.focus()
    page.keyboard.press("Tab")
    first = attention_order(listed["projects"])[0]
    assert (
        page.evaluate(
            "document.activeElement.closest('li') && document.activeElement.closest('li').dataset.projectId"
        )
        == first
    )
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{fleet.url}/#/p/{first}")
    expect(page.locator("#dashboard-view")).to_be_visible()
    assert list(console) == []


def test_a_card_opens_its_project_and_only_its_stories_then_back(
    fleet: DaemonProcess, fleet_root: str, open_page: OpenPage
) -> None:
    listed = wait_for_projects(fleet, 6)
    api = next(row for row in listed["projects"] if row["name"] == "Api server")
    web = next(row for row in listed["projects"] if row["name"] == "Web shop")
    page, console = open_page()
    sign_in(page, fleet)
    page.locator(f"#project-list > li[data-project-id='{api['id']}'] a").click()
    expect(page).to_have_url(f"{fleet.url}/#/p/{api['id']}")
    expect(page.locator("#overview-view")).to_be_hidden()
    truth = fleet.api(f"/api/projects/{api['id']}/stories")
    grid = page.locator("#story-grid li")
    expect(grid).to_have_count(truth["total"])
    shown = page.eval_on_selector_all("#story-grid li", "items => items.map(li => li.dataset.storyId)")
    assert sorted(shown) == sorted(story["id"] for story in truth["stories"])
    assert not any(ident.startswith("web-") for ident in shown)
    expect(page.locator("#project-name")).to_have_text("Api server")
    expect(page).to_have_title("Api server · loopdash")

    # The project's own events reach it; another project's do not.
    write_prd(os.path.join(fleet_root, "api"), stories("api", 6, 3), project="Api server")
    write_prd(os.path.join(fleet_root, "web"), stories("web", 5, 5), project="Web shop")
    expect(page.locator("#story-grid li[data-story-id='api-003']")).to_have_attribute(
        "data-state", "completed"
    )
    expect(page.locator("#story-grid li[data-state='completed']")).to_have_count(3)
    expect(page.locator("#story-grid li")).to_have_count(6)

    # A story's address lives below the project's.
    page.locator("#story-grid li[data-story-id='api-001'] a").click()
    expect(page).to_have_url(f"{fleet.url}/#/p/{api['id']}/stories/api-001")
    expect(page.locator("#story-dialog")).to_contain_text("Api story number 1")
    page.keyboard.press("Escape")
    expect(page).to_have_url(f"{fleet.url}/#/p/{api['id']}")

    # Back to the overview, which kept up meanwhile.
    page.get_by_role("link", name="← All loops").click()
    expect(page.locator("#overview-view")).to_be_visible()
    expect(page.locator("#dashboard-view")).to_be_hidden()
    web_card = page.locator(f"#project-list > li[data-project-id='{web['id']}']")
    expect(web_card).to_contain_text("5 of 5 stories")
    # That row came on the one stream after Web shop's own story events: had the
    # project's view taken them, they would be in its grid by now.
    page.go_back()
    expect(page.locator("#dashboard-view")).to_be_visible()
    shown = page.eval_on_selector_all("#story-grid li", "items => items.map(li => li.dataset.storyId)")
    assert sorted(shown) == sorted(
        story["id"] for story in fleet.api(f"/api/projects/{api['id']}/stories")["stories"]
    )
    page.go_forward()
    expect(page.locator("#overview-view")).to_be_visible()
    listed = fleet.api("/api/projects")
    expect(page).to_have_title(title_counts(listed["projects"]))

    # A project's address opened directly, and its run's address below it.
    run_id = fleet.api(f"/api/projects/{web['id']}/history")["runs"][0]["run_id"]
    second, second_console = open_page()
    sign_in(second, fleet, f"#/p/{web['id']}/runs/{run_id}")
    expect(second.locator("#run-view")).to_be_visible()
    expect(second.locator("#run-title")).to_have_text(f"Run {run_id}")
    expect(second.locator("#run-back")).to_have_attribute("href", f"#/p/{web['id']}")
    second.locator("#run-back").click()
    expect(second.locator("#story-grid li")).to_have_count(5)
    expect(second.locator("#story-grid li[data-story-id='web-001']")).to_be_visible()
    assert list(console) == [] and list(second_console) == []


def test_remote_and_unreachable_loops_are_said_in_words_and_link_to_their_own_daemon(
    fleet: DaemonProcess, open_page: OpenPage
) -> None:
    """The overview's cards for another machine's loops (rows as docs/projects.md gives them).

    The page's own overview.js renders rows made here into a detached list: a
    remote row with ``url`` links to that daemon's page of the loop, one without
    says where to look, and an unreachable one says so in words and sorts last.
    """
    page, console = open_page()
    sign_in(page, fleet)
    script = page.get_attribute("script[type=module]", "src")
    assert script is not None and script.endswith("/app.js")
    cards = page.evaluate(
        """async (module) => {
          const {OverviewView, ordered} = await import(module);
          const row = (id, state, extra = {}) => ({
            id, name: id.toUpperCase(), path: id, family: 'claude-loop', machine: null, reachable: true, state,
            quiet_for: 3, is_running: state === 'running', progress_pct: 50, completed_stories: 1, total_stories: 2,
            current_story: null, cost_so_far: 0.5, failed_iterations: 0, last_update: '2026-12-03T09:00:00Z', ...extra,
          });
          const rows = [
            row('box~api', 'running', {machine: 'box', url: 'http://box:8080/'}),
            row('box~web', 'unknown', {machine: 'box', reachable: false}),
            row('local', 'stopped'),
          ];
          const list = document.createElement('ul');
          const view = new OverviewView({list, summary: document.createElement('p'), filter: document.createElement('input')});
          view.setRows(rows);
          return {
            order: ordered(rows).map((r) => r.id),
            title: view.title(),
            cards: [...list.children].map((li) => ({
              id: li.dataset.projectId, state: li.dataset.state, text: li.textContent,
              href: li.querySelector('a') ? li.querySelector('a').getAttribute('href') : null,
            })),
          };
        }""",
        f"{fleet.url}/{script.removesuffix('app.js')}overview.js",
    )
    assert cards["order"] == ["local", "box~api", "box~web"]
    assert cards["title"] == "1 running · 1 stopped · 1 unreachable · loopdash"
    by_id = {card["id"]: card for card in cards["cards"]}
    assert by_id["box~api"]["href"] == "http://box:8080/#/p/api"
    assert "on box" in by_id["box~api"]["text"]
    assert by_id["box~web"]["href"] is None
    assert by_id["box~web"]["state"] == "unreachable"
    assert "Unreachable" in by_id["box~web"]["text"] and "Open it on box" in by_id["box~web"]["text"]
    assert by_id["local"]["href"] == "#/p/local"
    assert list(console) == []


@pytest.fixture
def scanned(fleet_root: str, tmp_path: Any) -> Iterator[DaemonProcess]:
    """A daemon given the fleet's folder with --scan: it finds the loops itself, and new ones."""
    process = DaemonProcess(
        fleet_root, os.path.join(str(tmp_path), "twistd.log"), scan=True, options=("--scan-interval", "0.5")
    )
    process.start()
    yield process
    process.stop()


def test_loops_created_and_removed_under_the_scan_root_come_and_go_live(
    scanned: DaemonProcess, fleet_root: str, open_page: OpenPage
) -> None:
    wait_for_projects(scanned, 6)
    page, console = open_page()
    sign_in(page, scanned)
    expect(page.locator("#project-list > li")).to_have_count(6)
    make_loop(os.path.join(fleet_root, "fresh"), "Fresh start", "fresh", 4, 1, quiet=5)
    listed = wait_for_projects(scanned, 7)
    fresh = next(row for row in listed["projects"] if row["name"] == "Fresh start")
    card = page.locator(f"#project-list > li[data-project-id='{fresh['id']}']")
    expect(card).to_contain_text("Fresh start")
    expect(card).to_contain_text("1 of 4 stories")
    assert card_ids(page) == attention_order(listed["projects"])
    expect(page).to_have_title(title_counts(listed["projects"]))

    shutil.rmtree(os.path.join(fleet_root, "cli"))
    listed = wait_for_projects(scanned, 6)
    expect(page.locator("#project-list > li")).to_have_count(6)
    assert "Command line" not in page.locator("#project-list").inner_text()
    assert card_ids(page) == attention_order(listed["projects"])
    expect(page).to_have_title(title_counts(listed["projects"]))
    assert list(console) == []


def test_a_daemon_with_one_project_shows_that_project_without_an_overview(
    tmp_path: Any, open_page: OpenPage
) -> None:
    root = os.path.join(str(tmp_path), "loops")
    make_loop(os.path.join(root, "only"), "The only loop", "only", 3, 1, quiet=5)
    daemon = DaemonProcess(root, os.path.join(str(tmp_path), "twistd.log"), scan=True)
    daemon.start()
    try:
        assert wait_for_projects(daemon, 1)["projects"][0]["name"] == "The only loop"
        page, console = open_page()
        sign_in(page, daemon)
        expect(page.locator("#dashboard-view")).to_be_visible()
        expect(page.locator("#overview-view")).to_be_hidden()
        expect(page.locator("#story-grid li")).to_have_count(3)
        assert page.title() == "loopdash"
        expect(page.locator("#project-crumbs")).to_be_hidden()

        # A second loop appears: the page comes back as the overview of both.
        make_loop(os.path.join(root, "second"), "The second loop", "two", 2, 0)
        listed = wait_for_projects(daemon, 2)
        expect(page.locator("#overview-view")).to_be_visible()
        expect(page.locator("#project-list > li")).to_have_count(2)
        assert card_ids(page) == attention_order(listed["projects"])
        assert list(console) == []
    finally:
        daemon.stop()


def test_a_scanning_daemon_losing_its_only_loop_shows_the_empty_overview(
    tmp_path: Any, open_page: OpenPage
) -> None:
    root = os.path.join(str(tmp_path), "loops")
    make_loop(os.path.join(root, "only"), "The only loop", "only", 3, 1, quiet=5)
    daemon = DaemonProcess(root, os.path.join(str(tmp_path), "twistd.log"), scan=True)
    daemon.start()
    try:
        wait_for_projects(daemon, 1)
        page, console = open_page()
        sign_in(page, daemon)
        expect(page.locator("#story-grid li")).to_have_count(3)
        shutil.rmtree(os.path.join(root, "only"))
        wait_for_projects(daemon, 0)
        expect(page.locator("#overview-view")).to_be_visible()
        expect(page.locator("#project-list > li")).to_have_count(0)
        expect(page.locator("#projects-summary")).to_have_text(
            "No loop project found yet; new ones show up here as they appear."
        )
        expect(page.locator("#dashboard-view")).to_be_hidden()
        # The loop's last events may make the page ask for what is gone just before
        # project_removed: the daemon's 404 (the browser logs it) is the true answer.
        assert [e for e in console if "status of 404" not in e] == []
    finally:
        daemon.stop()

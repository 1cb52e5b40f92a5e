"""The web dashboard in a real headless Chromium against a real daemon process.

Each test starts ``twistd -n loopdash`` on a sample project (tests/browser_support.py)
and reads the values the page must show from the REST API, so nothing here is a
hard-coded answer. Screenshots and the page weight land in the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopdash.cli.sample import (
    RealRun,
    append_progress,
    create_sample_project,
    progress_entry,
    write_flat_run,
    write_in_place,
    write_prd,
)
from loopdash.local.token import write_token
from tests.browser_support import (
    ConsoleWatch,
    DaemonProcess,
    current_run,
    money,
    read_prd,
)
from tests.conftest import DESKTOP, WAIT, OpenPage, Page

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def project(tmp_path: Any) -> str:
    """The sample project plus one story blocked by an unfinished dependency."""
    root = os.path.join(str(tmp_path), "project")
    create_sample_project(root)
    stories = read_prd(root)["userStories"]
    stories.append(
        {
            "id": "US-009",
            "title": "Release notes for the dashboard",
            "description": "Tell users about it.",
            "acceptanceCriteria": ["Mentions the web page"],
            "priority": 6,
            "passes": False,
            "notes": "",
            "estimatedComplexity": "simple",
            "dependencies": ["US-008"],
        }
    )
    write_prd(root, stories)
    return root


@pytest.fixture
def daemon(project: str, tmp_path: Any) -> Iterator[DaemonProcess]:
    process = DaemonProcess(project, os.path.join(str(tmp_path), "twistd.log"))
    process.start()
    yield process
    process.stop()


def expect(locator: Any) -> Any:
    """Playwright's expect, bounded by WAIT (its default, 5 s, is short on a shared machine)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT)
    return playwright_expect(locator)


def sign_in(page: Page, daemon: DaemonProcess, route: str = "") -> None:
    page.goto(f"{daemon.url}/#token={daemon.token}")
    expect(page.locator("#connection-state")).to_have_text("Live", timeout=WAIT)
    if route:
        page.goto(f"{daemon.url}/{route}")


def story_states(page: Page) -> dict[str, str]:
    states: dict[str, str] = page.eval_on_selector_all(
        "#story-grid li",
        "items => Object.fromEntries(items.map(li => [li.dataset.storyId, li.dataset.state]))",
    )
    return states


# -- signing in -----------------------------------------------------------------


def test_sign_in_from_the_fragment_keeps_the_token_for_the_tab_only(
    daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    sign_in(page, daemon)
    assert "token" not in page.url
    assert page.url == f"{daemon.url}/"
    assert page.evaluate("sessionStorage.getItem('loopdash.token')") == daemon.token
    assert page.evaluate("localStorage.getItem('loopdash.token')") is None
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#dashboard-view")).to_be_visible()
    assert list(console) == []


def test_sign_in_from_the_form_can_remember_the_token_on_this_device(
    daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    page.goto(daemon.url + "/")
    form = page.locator("#signin")
    expect(form).to_be_visible()
    expect(form).to_contain_text(".claude-loop/dashboard/auth_token.txt")
    expect(page.locator("#connection-state")).to_have_text("Not signed in")
    page.get_by_label("API token").fill(daemon.token)
    page.get_by_label("Remember on this device").check()
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection-state")).to_have_text("Live")
    expect(form).to_be_hidden()
    assert page.evaluate("localStorage.getItem('loopdash.token')") == daemon.token

    # Remembered: a new tab of the same browser profile goes straight in.
    second, second_console = open_page(context=page.context)
    second.goto(daemon.url + "/")
    expect(second.locator("#connection-state")).to_have_text("Live")
    expect(second.locator("#signin")).to_be_hidden()

    # Signing out forgets it.
    second.get_by_role("button", name="Sign out").click()
    expect(second.locator("#signin")).to_be_visible()
    assert second.evaluate("localStorage.getItem('loopdash.token')") is None
    assert list(console) == [] and list(second_console) == []


def test_a_wrong_token_is_refused_plainly(daemon: DaemonProcess, open_page: OpenPage) -> None:
    page, console = open_page()
    page.goto(f"{daemon.url}/#token=not-the-token")
    error = page.locator("#signin-error")
    expect(error).to_contain_text("That token is wrong")
    expect(error).to_contain_text("403")
    expect(page.locator("#dashboard-view")).to_be_hidden()
    assert "not-the-token" not in page.url
    assert page.evaluate("sessionStorage.getItem('loopdash.token')") is None

    page.get_by_label("API token").fill(daemon.token + "x")
    page.get_by_role("button", name="Sign in").click()
    expect(error).to_contain_text("That token is wrong")
    page.get_by_label("API token").fill(daemon.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection-state")).to_have_text("Live")
    expect(error).to_be_empty()
    # The only errors are the browser's own notes about the two refused requests.
    assert [e for e in console if "status of 403" not in e] == []
    assert len(console.errors) == 2


# -- what the page shows --------------------------------------------------------


def test_every_section_shows_the_projects_values(daemon: DaemonProcess, open_page: OpenPage) -> None:
    status = daemon.api("/api/status")
    metrics = daemon.api("/api/metrics")
    logs = daemon.api("/api/logs?limit=1000")
    history = daemon.api("/api/history")
    page, console = open_page()
    sign_in(page, daemon)

    # Execution
    assert status["is_running"] and status["current_story"]["id"] == "US-005"
    expect(page.locator("#run-state")).to_contain_text("Running")
    expect(page.locator("#run-state")).to_contain_text(status["run_id"])
    expect(page.locator("#current-story")).to_contain_text(f"US-005 {status['current_story']['title']}")
    expect(page.locator("#progress-label")).to_contain_text(
        f"{status['completed_stories']} of {status['total_stories']} stories complete ({status['progress_pct']:.1f}%)"
    )
    assert page.locator("#progress").evaluate("p => [p.value, p.max]") == [
        status["completed_stories"],
        status["total_stories"],
    ]
    expect(page.locator("#cost")).to_have_text(money(status["cost_so_far"]))
    expect(page.locator("#eta")).not_to_have_text("—")
    elapsed = page.locator("#elapsed").inner_text()
    page.wait_for_function("before => document.querySelector('#elapsed').textContent !== before", arg=elapsed)

    # Stories: coloured by state, with priority and complexity
    assert story_states(page) == {
        "US-001": "completed",
        "US-002": "completed",
        "US-003": "completed",
        "US-004": "completed",
        "US-005": "in-progress",
        "US-006": "completed",
        "US-007": "completed",
        "US-008": "pending",
        "US-009": "blocked",
    }
    card = page.locator("#story-grid li[data-story-id='US-004']")
    expect(card).to_contain_text("Priority 2")
    expect(card).to_contain_text("complex")
    expect(page.locator("#stories-summary")).to_have_text(
        "6 completed · 1 in progress · 1 blocked · 1 pending"
    )
    colours = {
        state: page.locator(f"#story-grid li[data-state='{state}'] a").first.evaluate(
            "a => getComputedStyle(a).borderLeftColor"
        )
        for state in ("completed", "in-progress", "pending", "blocked")
    }
    assert len(set(colours.values())) == 4, colours

    # Charts of the current run: one mark per iteration on each chart
    expect(page.locator("#charts-run")).to_contain_text(metrics["run_id"])
    iterations = len(metrics["iterations"])
    assert page.locator("[data-chart='cost'] .mark").count() == iterations
    assert page.locator("[data-chart='tokens'] .bar").count() == 2 * iterations
    assert page.locator("[data-chart='duration'] .bar").count() == iterations

    # Logs: every entry, newest at the bottom, markdown rendered
    entries = page.locator("#log-list > li")
    expect(entries).to_have_count(logs["total"])
    expect(entries.last).to_contain_text(logs["logs"][-1]["timestamp"])
    expect(entries.first.locator("strong").first).to_have_text("Story")
    expect(entries.first.locator("code").first).to_have_text("log_provider_usage_jsonl()")
    expect(page.locator("#log-counter")).to_have_text(
        f"Showing entries 1–{logs['total']} of {logs['total']}."
    )

    # Every control and picture has an accessible name
    unnamed = [
        line
        for line in page.locator("body").aria_snapshot().splitlines()
        if re.match(
            r"^\s*- (button|link|textbox|searchbox|checkbox|img|progressbar|dialog)\s*(\[[^\]]*\])?:?$", line
        )
    ]
    assert unnamed == []

    # History: newest first
    rows = page.locator("#runs-body tr")
    expect(rows).to_have_count(len(history["runs"]))
    for row, run in zip(rows.all(), history["runs"], strict=False):
        expect(row.locator("th")).to_have_text(run["run_id"])
        expect(row).to_contain_text(money(run["total_cost"]))
    assert list(console) == []


def test_a_story_opens_its_detail_from_the_keyboard_with_links_to_its_dependencies(
    daemon: DaemonProcess, open_page: OpenPage
) -> None:
    stories = {s["id"]: s for s in daemon.api("/api/stories")["stories"]}
    page, console = open_page()
    sign_in(page, daemon)
    page.locator("#theme-toggle").focus()
    for _ in range(60):  # Tab through the page until the in-progress story card has focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('li')?.dataset.storyId") == "US-005":
            break
    else:
        raise AssertionError("the US-005 card is not reachable with Tab")
    page.keyboard.press("Enter")
    dialog = page.locator("#story-dialog")
    expect(dialog).to_be_visible()
    assert page.url.endswith("#/stories/US-005")
    story = stories["US-005"]
    expect(dialog.locator("h2")).to_have_text(f"US-005 {story['title']}")
    expect(dialog).to_contain_text(story["description"])
    expect(dialog.locator(".criteria li")).to_have_text(story["acceptanceCriteria"])
    expect(dialog).to_contain_text("In progress")
    expect(dialog).to_contain_text("high")
    expect(dialog.locator(".deps a")).to_have_text(story["dependencies"])

    dialog.get_by_role("link", name="US-002").click()
    expect(dialog.locator("h2")).to_have_text(f"US-002 {stories['US-002']['title']}")
    expect(dialog.locator(".story-notes")).to_have_text(stories["US-002"]["notes"])
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert list(console) == []


def test_logs_escape_markup_filter_and_page_older_entries(
    project: str, tmp_path: Any, open_page: OpenPage
) -> None:
    for n in range(60):
        append_progress(
            project,
            progress_entry(
                f"2026-01-0{n % 9 + 1} 10:{n:02d}:00",
                f"US-{100 + n}",
                f"Entry {n}",
                "Complete",
                [f"Bullet of entry {n}"],
            ),
        )
    append_progress(
        project,
        progress_entry(
            "2026-01-10 10:00:00",
            "US-999",
            "<img src=x id=injected>",
            "Complete",
            ["`<script>alert(1)</script>` stays text", "**bold** and *em*"],
        ),
    )
    daemon = DaemonProcess(project, os.path.join(str(tmp_path), "twistd.log"))
    daemon.start()
    try:
        total = daemon.api("/api/logs?limit=0")["total"]
        page, console = open_page()
        sign_in(page, daemon)
        entries = page.locator("#log-list > li")
        expect(entries).to_have_count(50)
        last = entries.last
        expect(last).to_contain_text("<img src=x id=injected>")
        assert page.locator("#injected").count() == 0
        expect(last.locator("code")).to_have_text("<script>alert(1)</script>")
        expect(last.locator("li strong")).to_have_text("bold")
        expect(last.locator("li em")).to_have_text("em")
        # Newest at the bottom, scrolled into view while following
        assert page.locator("#log-scroll").evaluate("s => s.scrollHeight - s.scrollTop - s.clientHeight < 4")

        # Scrolling up pauses auto-scroll
        page.locator("#log-scroll").evaluate("s => s.scrollBy(0, -400)")
        expect(page.get_by_label("Follow new entries")).not_to_be_checked()

        # Load older: the first entries of progress.txt appear above
        older = page.get_by_role("button", name="Load older entries")
        expect(older).to_contain_text(f"{total - 50} more")
        older.click()
        expect(entries).to_have_count(total)
        expect(older).to_be_hidden()
        expect(entries.first).to_contain_text("US-001")

        page.get_by_label("Filter").fill("Entry 42")
        visible = page.locator("#log-list > li:not([hidden])")
        expect(visible).to_have_count(1)
        expect(visible).to_contain_text("Bullet of entry 42")
        expect(page.locator("#log-counter")).to_contain_text(f"1 of {total} loaded entries match")
        assert list(console) == []
    finally:
        daemon.stop()


def test_an_entry_cut_at_the_daemons_cap_says_so_with_its_size(
    project: str, tmp_path: Any, open_page: OpenPage
) -> None:
    line = "- " + "w" * 100_000
    append_progress(project, "### Iteration: 2026-01-11 10:00:00\n" + line + "\n")
    size = len(("### Iteration: 2026-01-11 10:00:00\n" + line + "\n").encode())
    daemon = DaemonProcess(project, os.path.join(str(tmp_path), "twistd.log"))
    daemon.start()
    try:
        page, console = open_page()
        sign_in(page, daemon)
        last = page.locator("#log-list > li").last
        expect(last.locator(".log-truncated")).to_have_text(
            f"Cut here: the whole entry is {size:,} bytes; see progress.txt."
        )
        assert list(console) == []
    finally:
        daemon.stop()


def test_a_page_following_the_log_keeps_its_newest_500_entries_and_pages_back_the_rest(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    # A page left open on a loop for days must not hold every entry it was sent.
    page, console = open_page()
    sign_in(page, daemon)
    entries = page.locator("#log-list > li")
    before = daemon.api("/api/logs?limit=0")["total"]
    expect(entries).to_have_count(min(before, 50))
    for batch in range(13):  # 520 entries, appended live 40 at a time
        append_progress(
            project,
            "".join(
                progress_entry(
                    f"2026-02-01 10:{n % 60:02d}:00",
                    f"US-{500 + n}",
                    f"Kept entry {n}",
                    "Complete",
                    [f"Bullet of kept entry {n}"],
                )
                for n in range(batch * 40, batch * 40 + 40)
            ),
        )
    expect(entries.last).to_contain_text("Kept entry 519")
    total = daemon.api("/api/logs?limit=0")["total"]
    expect(page.locator("#log-counter")).to_have_text(f"Showing entries {total - 499}–{total} of {total}.")
    expect(entries).to_have_count(500)
    first_kept = total - 500 - before  # the entry numbers above count from the first appended
    expect(entries.first).to_contain_text(f"Kept entry {first_kept}")
    assert page.locator("#log-scroll").evaluate("s => s.scrollHeight - s.scrollTop - s.clientHeight < 4")

    # What was dropped is still there, a page at a time.
    older = page.get_by_role("button", name="Load older entries")
    expect(older).to_contain_text(f"({total - 500} more)")
    older.click()
    shown = min(total, 550)
    expect(entries).to_have_count(shown)
    expect(page.locator("#log-counter")).to_have_text(
        f"Showing entries {total - shown + 1}–{total} of {total}."
    )
    expect(entries.last).to_contain_text("Kept entry 519")
    assert list(console) == []


def test_charts_show_an_iterations_values_on_hover_and_from_the_keyboard(
    daemon: DaemonProcess, open_page: OpenPage
) -> None:
    run_id = daemon.api("/api/history")["runs"][1]["run_id"]
    iterations = daemon.api(f"/api/runs/{run_id}")["metrics"]["iterations"]
    failed = next(i for i, it in enumerate(iterations) if it["status"] == "failure")
    page, console = open_page()
    sign_in(page, daemon, f"#/runs/{run_id}")
    cost = page.locator("#run-body [data-chart='cost'] svg")
    expect(cost).to_be_visible()
    assert page.locator("#run-body [data-chart='cost'] .mark.bad").count() == 1
    assert page.locator("#run-body [data-chart='duration'] .cross").count() == 1
    ticks = page.locator("#run-body [data-chart='cost'] .grid text").all_text_contents()
    assert "$0" in ticks and "#1" in ticks
    longest = max(it["elapsed_ms"] for it in iterations)
    unit = "s" if longest < 120_000 else "m" if longest < 7_200_000 else "h"
    durations = page.locator("#run-body [data-chart='duration'] .grid text").all_text_contents()
    assert [t for t in durations if not t.startswith("#")] and all(
        t.endswith(unit) for t in durations if not t.startswith("#")
    ), durations

    mark = page.locator("#run-body [data-chart='cost'] .mark").nth(failed)
    mark.hover()
    tooltip = page.locator(".chart-tooltip")
    expect(tooltip).to_be_visible()
    it = iterations[failed]
    expect(tooltip).to_contain_text(f"Iteration {it['iteration']}: {it['story_id']}")
    expect(tooltip).to_contain_text("Result: failure")
    expect(tooltip).to_contain_text(f"Cost: {money(it['cost'])}")

    cost.focus()
    page.keyboard.press("Home")
    expect(tooltip).to_contain_text(f"Iteration 1: {iterations[0]['story_id']}")
    page.keyboard.press("ArrowRight")
    expect(tooltip).to_contain_text(f"Iteration 2: {iterations[1]['story_id']}")
    page.keyboard.press("Escape")
    expect(tooltip).to_be_hidden()
    assert list(console) == []


def test_a_run_detail_page_loads_from_its_url(daemon: DaemonProcess, open_page: OpenPage) -> None:
    run_id = daemon.api("/api/history")["runs"][1]["run_id"]
    detail = daemon.api(f"/api/runs/{run_id}")
    page, console = open_page()
    sign_in(page, daemon)
    page.goto(f"{daemon.url}/#/runs/{run_id}")
    page.reload()  # loaded from the URL alone (the tab keeps its token)
    expect(page.locator("#run-title")).to_have_text(f"Run {run_id}")
    expect(page.locator("#dashboard-view")).to_be_hidden()
    assert page.title() == f"Run {run_id} · loopdash"
    rows = page.locator("#run-body table.iterations tbody tr")
    expect(rows).to_have_count(len(detail["metrics"]["iterations"]))
    failures = sum(1 for it in detail["metrics"]["iterations"] if it["status"] == "failure")
    expect(page.locator("#run-body .result-bad")).to_have_count(failures)
    expect(page.locator("#run-body")).to_contain_text(f"{detail['metrics']['cache']['hit_rate']:.1f}%")
    expect(page.locator("#run-body")).to_contain_text(money(detail["summary"]["total_cost"]))
    expect(page.locator("#run-body")).to_contain_text("Parallel execution")
    expect(page.locator("#run-body [data-chart='cost'] .mark")).to_have_count(
        len(detail["metrics"]["iterations"])
    )

    page.get_by_role("link", name="← Back to the dashboard").click()
    expect(page.locator("#dashboard-view")).to_be_visible()
    page.goto(f"{daemon.url}/#/runs/20000101_000000")
    expect(page.locator("#run-body")).to_contain_text("There is no run 20000101_000000")
    # The browser notes the API's 404 for the unknown run; nothing else may complain.
    assert [e for e in console if "status of 404" not in e] == []


def test_history_pages_through_runs_newest_first(project: str, tmp_path: Any, open_page: OpenPage) -> None:
    base = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    for n in range(12):
        moment = base + timedelta(days=n)
        write_flat_run(
            project,
            moment.strftime("%Y%m%d_%H%M%S"),
            [
                {
                    "story_id": "US-001",
                    "status": "success",
                    "elapsed_ms": 60000,
                    "tokens_in": 100,
                    "tokens_out": 50,
                    "cost": 0.01 * (n + 1),
                    "agents_used": [],
                }
            ],
            60,
            moment.isoformat(),
        )
    daemon = DaemonProcess(project, os.path.join(str(tmp_path), "twistd.log"))
    daemon.start()
    try:
        runs = daemon.api("/api/history?limit=100")
        page, console = open_page()
        sign_in(page, daemon)
        rows = page.locator("#runs-body tr th")
        expect(rows).to_have_text([r["run_id"] for r in runs["runs"][:10]])
        expect(page.locator("#runs-counter")).to_have_text(f"Runs 1–10 of {runs['total']}, newest first.")
        expect(page.get_by_role("button", name="Newer runs")).to_be_disabled()
        page.get_by_role("button", name="Older runs").click()
        expect(rows).to_have_text([r["run_id"] for r in runs["runs"][10:]])
        expect(page.get_by_role("button", name="Older runs")).to_be_disabled()
        rows.first.get_by_role("link").click()
        expect(page.locator("#run-title")).to_have_text(f"Run {runs['runs'][10]['run_id']}")
        assert list(console) == []
    finally:
        daemon.stop()


# -- live -------------------------------------------------------------------------


def make_progress(root: str, daemon: DaemonProcess, note: str) -> dict[str, Any]:
    """The loop finishes US-005: prd.json, metrics.json and progress.txt change as a real loop writes them."""
    stories = read_prd(root)["userStories"]
    story = next(s for s in stories if s["id"] == "US-005")
    story.update(passes=True, notes=note)
    run = current_run(root)
    now = datetime.now(UTC)
    iteration = run.add_iteration(
        "US-005", story["title"], now, 240000, "complete", tokens_in=20000, tokens_out=6000
    )
    run.write_metrics(now)
    append_progress(
        root,
        progress_entry(
            now.strftime("%Y-%m-%d %H:%M:%S"),
            "US-005",
            story["title"],
            "Complete",
            [f"Added the **worker pool** ({note})", "Wrote `pool.py`"],
        ),
    )
    write_prd(root, stories)
    return iteration


def test_changes_to_the_loop_files_appear_without_a_reload(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    before = daemon.api("/api/status")
    logs_before = daemon.api("/api/logs?limit=0")["total"]
    iterations_before = len(daemon.api("/api/metrics")["iterations"])
    page, console = open_page()
    sign_in(page, daemon)
    page.evaluate("window.stillTheSamePage = true")

    make_progress(project, daemon, "live test")

    expect(page.locator("#story-grid li[data-story-id='US-005']")).to_have_attribute(
        "data-state", "completed"
    )
    expect(page.locator("#progress-label")).to_contain_text(
        f"{before['completed_stories'] + 1} of {before['total_stories']} stories complete"
    )
    expect(page.locator("[data-chart='cost'] .mark")).to_have_count(iterations_before + 1)
    history_row = page.locator(f"#runs-body tr[data-run-id='{before['run_id']}']")
    expect(history_row.locator("td").nth(1)).to_have_text(str(iterations_before + 1))
    entries = page.locator("#log-list > li")
    expect(entries).to_have_count(logs_before + 1)
    expect(entries.last.locator("strong", has_text="worker pool")).to_be_visible()  # followed to the bottom
    expect(page.locator("#current-story")).not_to_contain_text("US-005")
    status = daemon.api("/api/status")
    expect(page.locator("#cost")).to_have_text(money(status["cost_so_far"]))
    assert page.evaluate("window.stillTheSamePage") is True
    assert list(console) == []


def test_a_click_lands_on_what_was_pressed_though_its_section_renders_again_meanwhile(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    # Each status update renders the execution card and the runs table again. Rebuilt
    # whole, a link pressed before an update and released after it got no click (the
    # press was on the old node). The shown nodes are now kept and updated.
    status = daemon.api("/api/status")
    story_id = status["current_story"]["id"]
    older_run = daemon.api("/api/history")["runs"][1]["run_id"]
    page, console = open_page()
    sign_in(page, daemon)

    story_link = page.locator("#current-story a")
    expect(story_link).to_have_text(story_id)
    story_link.hover()
    page.mouse.down()
    run = current_run(project)  # another failed try of the current story: a status update
    ended = datetime.now(UTC)
    run.add_iteration(story_id, status["current_story"]["title"], ended, 60000, "failed")
    run.write_metrics(ended)
    expect(page.locator("#cost")).to_have_text(money(daemon.api("/api/status")["cost_so_far"]))
    page.mouse.up()
    dialog = page.locator("#story-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2 .story-id")).to_have_text(story_id)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    run_link = page.locator(f"#runs-body tr[data-run-id='{older_run}'] th a")
    run_link.hover()
    page.mouse.down()
    ended = datetime.now(UTC)  # the current run's row changes, the older run's does not
    run.add_iteration(story_id, status["current_story"]["title"], ended, 60000, "failed")
    run.write_metrics(ended)
    iterations = len(run.iterations)
    expect(page.locator(f"#runs-body tr[data-run-id='{run.run_id}'] td").nth(1)).to_have_text(str(iterations))
    page.mouse.up()
    expect(page.locator("#run-title")).to_have_text(f"Run {older_run}")
    assert page.url.endswith(f"#/runs/{older_run}")
    assert list(console) == []


def test_a_dependency_that_names_no_story_does_not_block_on_the_page_or_in_the_api(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    # The daemon ignores a dependency on a story the plan does not have (a typo must not
    # make the loop look idle: derive.status.next_story); the page called it Blocked.
    page, console = open_page()
    sign_in(page, daemon)
    card = page.locator("#story-grid li[data-story-id='US-009']")
    expect(card).to_have_attribute("data-state", "blocked")  # US-008 is not done
    stories = read_prd(project)["userStories"]
    for story in stories:
        if story["id"] == "US-009":
            story["dependencies"] = ["US-999"]
    write_prd(project, stories)
    expect(card).to_have_attribute("data-state", "pending")
    expect(page.locator("#stories-summary")).to_have_text(
        "6 completed · 1 in progress · 0 blocked · 2 pending"
    )
    answer = daemon.api("/api/stories")
    assert [s["dependencies"] for s in answer["stories"] if s["id"] == "US-009"] == [["US-999"]]
    assert list(console) == []


def test_a_new_run_appears_live_and_a_replaced_progress_txt_is_reloaded(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    sign_in(page, daemon)
    old_run = daemon.api("/api/status")["run_id"]
    run = RealRun(project, datetime.now(UTC) + timedelta(seconds=2))  # a later run id than the current one
    run.start()
    # The new run starts a fresh progress.txt (the loop replaced it).
    write_in_place(
        os.path.join(project, "progress.txt"),
        "# progress\n\n"
        + progress_entry(
            "2026-02-01 09:00:00",
            "US-008",
            "Visual progress dashboard: frontend",
            "Failed",
            ["First try of the new run"],
        ),
    )
    run.add_iteration("US-008", "Visual progress dashboard: frontend", run.started_at, 90000, "failed")
    run.write_metrics(run.started_at)

    expect(page.locator("#runs-body tr").first.locator("th")).to_have_text(run.run_id)
    expect(page.locator("#charts-run")).to_contain_text(f"Current run {run.run_id}: 1 iteration,")
    expect(page.locator("[data-chart='cost'] .mark.bad")).to_have_count(1)
    entries = page.locator("#log-list > li")
    expect(entries).to_have_count(1)
    expect(entries).to_contain_text("First try of the new run")
    assert old_run != run.run_id
    assert list(console) == []


def test_a_loop_that_went_quiet_shows_stopped_without_finishing_and_the_clock_stops(
    project: str, tmp_path: Any, open_page: OpenPage
) -> None:
    # Issue 15: a run without a summary that went quiet ended without finishing; the page says so.
    daemon = DaemonProcess(project, os.path.join(str(tmp_path), "twistd.log"), options=("--stale-after", "2"))
    daemon.start()
    try:
        page, console = open_page()
        sign_in(page, daemon)
        state = page.locator("#run-state")
        status = daemon.wait_for_status(lambda s: s["is_running"] is False)  # 2 s without activity
        assert status["state"] == "stopped" and status["estimated_remaining"] is None
        expect(state).to_have_attribute("data-state", "stopped")
        expect(state).to_contain_text("Stopped without finishing")
        expect(state).to_contain_text(" ago")
        expect(page.locator("#quiet-for")).to_contain_text("quiet for")
        expect(page.locator("#eta")).to_have_text("—")
        last = status["current_story"]
        expect(page.locator("#current-story")).to_contain_text(f"Last story {last['id']}")
        expect(page.locator("#current-story")).to_contain_text(f"({last['status']})")
        expect(page.locator("#story-grid li[data-state='in-progress']")).to_have_count(0)
        row = page.locator(f"#runs-body tr[data-run-id='{status['run_id']}'] .col-state")
        expect(row).to_have_text("Stopped")
        expect(page.locator("#connection-state")).to_have_text("Live")  # the connection is fine
        expect(page.locator("#connection-detail")).not_to_contain_text("loop")
        elapsed = page.locator("#elapsed").inner_text()
        page.wait_for_timeout(1500)
        assert page.locator("#elapsed").inner_text() == elapsed
        page.screenshot(path=os.path.join(str(tmp_path), "stopped.png"), full_page=False)
        save_for_the_record(page, "stopped.png")
        assert list(console) == []
    finally:
        daemon.stop()


def save_for_the_record(page: Page, name: str) -> None:
    """Also keep a screenshot where LOOPDASH_SCREENSHOTS says (for a change's description)."""
    folder = os.environ.get("LOOPDASH_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, name), full_page=False)


def test_a_quiet_loop_shows_stalled_with_how_long_then_running_again(
    project: str, tmp_path: Any, open_page: OpenPage
) -> None:
    daemon = DaemonProcess(
        project,
        os.path.join(str(tmp_path), "twistd.log"),
        options=("--stall-after", "2", "--stale-after", "3600"),
    )
    daemon.start()
    try:
        page, console = open_page()
        sign_in(page, daemon)
        status = daemon.wait_for_status(lambda s: s["state"] == "stalled")
        assert status["is_running"] is True
        state = page.locator("#run-state")
        expect(state).to_have_attribute("data-state", "stalled")
        expect(state).to_contain_text("Stalled: no activity for")
        expect(page.locator(f"#runs-body tr[data-run-id='{status['run_id']}'] .col-state")).to_have_text(
            "Stalled"
        )
        page.screenshot(path=os.path.join(str(tmp_path), "stalled.png"), full_page=False)
        save_for_the_record(page, "stalled.png")
        make_progress(project, daemon, "back at work")
        expect(state).to_have_attribute("data-state", "running")
        expect(state).to_contain_text("Running")
        assert list(console) == []
    finally:
        daemon.stop()


def flip_story(root: str, story_id: str) -> bool:
    """The loop marks ``story_id`` passing (or a person un-marks it): prd.json and the log change."""
    stories = read_prd(root)["userStories"]
    story = next(s for s in stories if s["id"] == story_id)
    story["passes"] = not story["passes"]
    write_prd(root, stories)
    append_progress(
        root,
        progress_entry(
            datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            story_id,
            story["title"],
            "Complete" if story["passes"] else "Reopened",
            ["flipped by the test"],
        ),
    )
    return bool(story["passes"])


def test_a_page_loaded_while_a_story_finishes_never_shows_disagreeing_counts(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    """The story changes exactly between the page's fetches and its stream (the issue's race), every time.

    A route handler holds one of the page's requests, changes the story, waits
    until the daemon has published the change, then lets the request go: the
    change falls after some of the page's snapshots and before others, or
    before the stream opens. Rounds alternate which request is held.
    """
    held = ["api/stream/ticket", "api/stories", "api/status", "api/logs", "api/history", "api/metrics"]
    rounds = 12
    errors: list[str] = []
    flipped: list[bool] = []  # this round's change (cleared each round)
    for round_ in range(rounds):
        # A fresh browser context each round: no other tab whose shared stream it could join.
        page, console = open_page()
        target = held[round_ % len(held)]
        flipped.clear()

        def change_then_continue(route: Any) -> None:
            if not flipped:
                before = daemon.api("/api/stories")["completed"]
                passes = flip_story(project, "US-004")
                flipped.append(passes)
                expected = before + (1 if passes else -1)
                deadline = datetime.now(UTC) + timedelta(seconds=10)
                # Let the request go once the daemon has seen (and published) the change.
                while daemon.api("/api/status")["completed_stories"] != expected:
                    assert datetime.now(UTC) < deadline, "the daemon never saw the change"
                    time.sleep(0.02)
            route.continue_()

        page.route(f"**/{target}*", change_then_continue)
        sign_in(page, daemon)
        assert flipped, f"round {round_}: {target} was never requested"
        truth = daemon.api("/api/stories")
        completed = truth["completed"]
        grid = page.locator("#story-grid li[data-state='completed']")
        label = page.locator("#progress-label")
        expect(label).to_have_attribute("data-completed", str(completed))
        expect(grid).to_have_count(completed)
        expect(page.locator("#stories-summary")).to_contain_text(f"{completed} completed")
        expect(label).to_contain_text(f"{completed} of {truth['total']} stories complete")
        states = story_states(page)
        for story in truth["stories"]:
            assert (states[story["id"]] == "completed") == (story["status"] == "completed"), (round_, story)
        # And they stay agreed: nothing older overwrites them later.
        page.wait_for_timeout(300)
        assert page.locator("#progress-label").get_attribute("data-completed") == str(completed)
        assert grid.count() == completed
        errors.extend(console)
        page.context.close()
    assert errors == []


def log_texts(page: Page) -> list[str]:
    texts: list[str] = page.eval_on_selector_all("#log-list > li", "items => items.map(li => li.innerText)")
    return texts


def expect_log_matches_api(page: Page, daemon: DaemonProcess) -> None:
    """The page shows exactly the newest page of /api/logs (timestamps and text, in order)."""
    total = daemon.api("/api/logs?limit=0")["total"]
    api = daemon.api(f"/api/logs?limit=50&offset={max(total - 50, 0)}")["logs"]
    expect(page.locator("#log-list > li time")).to_have_text([e["timestamp"] for e in api])
    for index, entry in enumerate(api):
        last_line = entry["lines"][-1].lstrip("- ")
        expect(page.locator("#log-list > li").nth(index)).to_contain_text(last_line)
    expect(page.locator("#log-counter")).to_contain_text(f"of {total}")


def test_a_log_truncated_replaced_and_edited_under_an_open_page_matches_the_api(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    sign_in(page, daemon)
    path = os.path.join(project, "progress.txt")
    expect_log_matches_api(page, daemon)

    # Truncated and rewritten: printf '### Iteration: X\nA\n' > progress.txt
    with open(path, "w", encoding="utf-8") as f:
        f.write("### Iteration: X\nA\n")
    expect(page.locator("#log-list > li")).to_have_count(1)
    expect_log_matches_api(page, daemon)

    # Replaced by another file (rename over it).
    fresh = "".join(
        progress_entry(f"2026-02-0{i} 09:00:00", "US-001", "Logging", "Complete", [f"replaced entry {i}"])
        for i in range(1, 4)
    )
    with open(path + ".new", "w", encoding="utf-8") as f:
        f.write(fresh)
    os.replace(path + ".new", path)
    expect(page.locator("#log-list > li")).to_have_count(3)
    expect_log_matches_api(page, daemon)

    # Regrown in place: entry 0 changes and the file grows.
    regrown = (
        progress_entry("2026-03-01 10:00:00", "US-002", "Metrics", "Complete", ["regrown first"]) + fresh
    )
    write_in_place(path, regrown)
    expect(page.locator("#log-list > li")).to_have_count(4)
    expect_log_matches_api(page, daemon)

    # An old entry edited in place, same length.
    write_in_place(path, regrown.replace("replaced entry 1", "REPLACED ENTRY 1"))
    expect(page.locator("#log-list > li").nth(1)).to_contain_text("REPLACED ENTRY 1")
    # The page's page of the API says the edit too: an answer kept from before the
    # edit (same inode, size and total) once made the page go back to the old text.
    assert daemon.api("/api/logs?limit=50&offset=0")["logs"][1]["lines"][-1] == "- REPLACED ENTRY 1"
    expect_log_matches_api(page, daemon)
    expect(page.locator("#log-list > li").nth(1)).to_contain_text("REPLACED ENTRY 1")
    assert list(console) == []


def test_a_daemon_restart_shows_reconnecting_then_live_without_user_action(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url) if "/api/stream?" in request.url else None)
    sign_in(page, daemon)
    page.evaluate("window.stillTheSamePage = true")
    banner = page.locator("#connection-state")

    daemon.stop()
    expect(banner).to_have_text("Reconnecting")
    expect(page.locator("#connection-detail")).to_contain_text(" s")
    daemon.start()
    expect(banner).to_have_text("Live", timeout=40_000)
    assert page.evaluate("window.stillTheSamePage") is True
    # The first stream resumes from the oldest answer the page fetched (issue 15: nothing
    # published between the fetches and the stream is lost); the reconnection resumes
    # after the last event seen, of the first daemon's boot.
    first_boot = streams[0].split("last_event_id=")[1].split("-")[0]
    assert "last_event_id=" in streams[-1] and len(streams) >= 2
    assert streams[-1].split("last_event_id=")[1].split("-")[0] == first_boot

    # The new connection carries changes again.
    make_progress(project, daemon, "after restart")
    expect(page.locator("#story-grid li[data-story-id='US-005']")).to_have_attribute(
        "data-state", "completed"
    )
    expect(page.locator("#log-list > li").last).to_contain_text("after restart")
    # While the daemon was down the browser noted the refused connections; nothing else.
    assert [e for e in console if "ERR_CONNECTION_REFUSED" not in e] == []


def test_a_daemon_that_stays_away_is_shown_offline_and_retry_now_reconnects(
    daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    sign_in(page, daemon)
    banner = page.locator("#connection-state")
    daemon.stop()
    expect(banner).to_have_text("Reconnecting")
    expect(banner).to_have_text("Offline")  # after three failed attempts in a row
    expect(page.locator("#connection-detail")).to_contain_text("the daemon is not answering; retrying in")
    daemon.start()
    page.get_by_role("button", name="Retry now").click()
    expect(banner).to_have_text("Live")
    expect(page.get_by_role("button", name="Retry now")).to_be_hidden()
    assert [e for e in console if "ERR_CONNECTION_REFUSED" not in e] == []


def test_a_token_replaced_while_the_page_is_open_signs_it_out_plainly(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    sign_in(page, daemon)
    write_token(os.path.join(project, ".claude-loop", "dashboard", "auth_token.txt"))
    make_progress(project, daemon, "after rotation")  # the page asks for the new metrics: 403
    expect(page.locator("#signin-error")).to_contain_text("That token is wrong")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#connection-state")).to_have_text("Not signed in")
    assert page.evaluate("sessionStorage.getItem('loopdash.token')") is None
    page.get_by_label("API token").fill(daemon.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection-state")).to_have_text("Live")
    expect(page.locator("#log-list > li").last).to_contain_text("after rotation")
    assert [e for e in console if "status of 403" not in e] == []


def test_without_a_stream_the_page_polls_and_says_so(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    # An older daemon without /api/stream: its ticket endpoint answers 404.
    page.route(
        "**/api/stream/ticket",
        lambda route: route.fulfill(
            status=404, content_type="application/json", body=json.dumps({"error": "Not found"})
        ),
    )
    page.goto(f"{daemon.url}/#token={daemon.token}")
    expect(page.locator("#connection-state")).to_have_text("Polling")
    expect(page.locator("#connection-detail")).to_contain_text("no live stream")
    make_progress(project, daemon, "polled")
    expect(page.locator("#story-grid li[data-story-id='US-005']")).to_have_attribute(
        "data-state", "completed"
    )
    expect(page.locator("#log-list > li").last).to_contain_text("polled")
    assert [e for e in console if "status of 404" not in e] == []


# -- looks ----------------------------------------------------------------------


def test_screenshots_at_desktop_and_phone_widths_and_the_first_load_weight(
    daemon: DaemonProcess, open_page: OpenPage, tmp_path: Any
) -> None:
    out = tmp_path / "screenshots"
    out.mkdir()
    page, console = open_page(DESKTOP, "light")
    sign_in(page, daemon)
    expect(page.locator("[data-chart='cost'] svg")).to_be_visible()
    weight = page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const resources = performance.getEntriesByType('resource');
        const assets = resources.filter(r => r.name.includes('/assets/'));
        const api = resources.filter(r => r.name.includes('/api/'));
        const sum = (list, key) => list.reduce((n, r) => n + r[key], 0);
        return {page: nav.transferSize, assets: sum(assets, 'transferSize'), api: sum(api, 'transferSize'),
                assets_decoded: sum(assets, 'decodedBodySize'), files: assets.length};
    }""")
    (tmp_path / "page-weight.json").write_text(json.dumps(weight, indent=2))
    assert weight["files"] >= 10 and weight["assets"] > 0
    assert weight["assets"] < weight["assets_decoded"]  # served gzipped
    page.screenshot(path=str(out / "desktop-light.png"), full_page=True)

    # Assets have versioned names and a long cache lifetime: a reload fetches only the page.
    page.reload()
    expect(page.locator("#connection-state")).to_have_text("Live")
    reloaded = page.evaluate(
        "performance.getEntriesByType('resource').filter(r => r.name.includes('/assets/')).map(r => r.transferSize)"
    )
    assert reloaded and all(size == 0 for size in reloaded), reloaded

    phone, phone_console = open_page(PHONE, "dark")
    sign_in(phone, daemon)
    expect(phone.locator("[data-chart='cost'] svg")).to_be_visible()
    assert phone.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"
    )  # no sideways scrolling
    background = phone.evaluate("getComputedStyle(document.body).backgroundColor")
    phone.screenshot(path=str(out / "phone-dark.png"), full_page=True)

    # The toggle overrides the system preference.
    phone.get_by_role("button", name="Theme: auto (switch theme)").click()
    assert phone.evaluate("document.documentElement.dataset.theme") == "light"
    assert phone.evaluate("getComputedStyle(document.body).backgroundColor") != background
    run_id = daemon.api("/api/history")["runs"][1]["run_id"]
    phone.goto(f"{daemon.url}/#/runs/{run_id}")
    expect(phone.locator("#run-body table.iterations")).to_be_visible()
    phone.screenshot(path=str(out / "phone-light-run.png"), full_page=True)
    page.goto(f"{daemon.url}/#/stories/US-005")
    expect(page.locator("#story-dialog")).to_be_visible()
    page.screenshot(path=str(out / "desktop-story-detail.png"))
    assert sorted(p.name for p in out.iterdir()) == [
        "desktop-light.png",
        "desktop-story-detail.png",
        "phone-dark.png",
        "phone-light-run.png",
    ]
    print(f"screenshots in {out}; first load: {weight}")
    assert list(console) == [] and list(phone_console) == []


# -- notifications and the budget ---------------------------------------------------


def test_a_budget_passed_shows_a_toast_a_browser_notification_and_a_red_bar(
    project: str, tmp_path: Any, chromium: Any
) -> None:
    probe = DaemonProcess(project, os.path.join(str(tmp_path), "probe.log"))
    probe.start()
    cost = probe.api("/api/status")["cost_so_far"]
    probe.stop()
    budget = round(cost * 1.1, 4)  # 91% spent: amber from the start (a baseline, so no toast yet)
    daemon = DaemonProcess(
        project,
        os.path.join(str(tmp_path), "twistd.log"),
        options=("--budget", str(budget), "--notify-kinds", "all"),
    )
    daemon.start()
    context = chromium.new_context(viewport=DESKTOP)
    try:
        context.grant_permissions(["notifications"], origin=daemon.url)
        # Record what the page asks the browser to show, and still show it.
        context.add_init_script(
            "window.__notified = []; const Real = window.Notification;"
            "window.Notification = class extends Real {"
            " constructor(title, options) { super(title, options); window.__notified.push([title, options.body]); } };"
        )
        page = context.new_page()
        page.set_default_timeout(WAIT)
        watch = ConsoleWatch()
        watch.attach(page)
        sign_in(page, daemon)
        expect(page.locator("#budget")).to_be_visible()
        expect(page.locator("#budget")).to_have_attribute("data-level", "warn")
        expect(page.locator("#budget-text")).to_have_text(
            f"{money(cost)} of {money(budget)} ({round(cost / budget * 100)}%): nearly spent"
        )
        assert page.locator("#toasts li").count() == 0

        run = current_run(project)
        ended = datetime.now(UTC)
        run.add_iteration("US-004", "Skills architecture: core framework", ended, 90_000, tokens_in=400_000)
        run.write_metrics(ended)
        status = daemon.wait_for_status(lambda s: s["cost_so_far"] > cost)
        toast = page.locator("#toasts li[data-kind='budget_exceeded']")
        expect(toast).to_have_count(1)
        expect(toast.locator(".toast-title")).to_have_text("claude-loop-p2-features: budget passed")
        expect(toast.locator(".toast-message")).to_have_text(
            f"Run {status['run_id']} has cost ${status['cost_so_far']:,.2f}, past its budget of ${budget:,.2f}."
        )
        expect(page.locator("#budget")).to_have_attribute("data-level", "over")
        assert page.evaluate("window.__notified") == [
            [
                "claude-loop-p2-features: budget passed",
                f"Run {status['run_id']} has cost ${status['cost_so_far']:,.2f}, past its budget of ${budget:,.2f}.",
            ]
        ]
        listed = daemon.api("/api/notifications")
        assert [n["kind"] for n in listed["notifications"]] == ["budget_exceeded"]

        # The story dialog says what the story cost in this run, from /api/metrics.
        metrics = daemon.api("/api/metrics")
        spent = sum(i["cost"] for i in metrics["iterations"] if i["story_id"] == "US-004")
        count = sum(1 for i in metrics["iterations"] if i["story_id"] == "US-004")
        page.goto(f"{daemon.url}/#/stories/US-004")
        expect(page.locator("#story-dialog .story-cost")).to_contain_text(
            f"{money(spent)} over {count} iteration{'s' if count != 1 else ''} of the current run"
        )
        page.keyboard.press("Escape")
        expect(page.locator("#cost-by-story table tbody tr")).to_have_count(
            len({i["story_id"] for i in metrics["iterations"]})
        )

        # This browser's choice of kinds: turning budget_exceeded off stops its toasts.
        page.locator("#notify-button").click()
        expect(page.locator("#notify-permission")).to_contain_text(
            "This browser shows loopdash notifications."
        )
        page.locator("#notify-dialog input[value='budget_exceeded']").uncheck()
        page.keyboard.press("Escape")
        stored = page.evaluate("JSON.parse(localStorage.getItem('loopdash.notify.kinds'))")
        assert "budget_exceeded" not in stored and "run_finished" in stored
        page.screenshot(path=os.path.join(str(tmp_path), "budget-passed.png"), full_page=True)
        assert watch.errors == []
    finally:
        context.close()
        daemon.stop()


# -- hostile links and many tabs (issue 18) ---------------------------------------------
# A #token= link must not replace a working token before the daemon accepts it, and
# a link pasted into an open tab works without a reload. Eight tabs of one browser
# share one event stream (a browser opens at most six connections per origin and
# each EventSource holds one), and every tab still gets every update.


def remember_in_form(page: Any, daemon: DaemonProcess) -> None:
    page.goto(daemon.url + "/")
    page.get_by_label("API token").fill(daemon.token)
    page.get_by_label("Remember on this device").check()
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection-state")).to_have_text("Live")


def open_streams(daemon: DaemonProcess) -> float:

    request = urllib.request.Request(
        daemon.url + "/metrics", headers={"Authorization": f"Bearer {daemon.token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(r"^loopdash_sse_streams_open (\S+)$", text, re.M)
    assert match is not None, text[:500]
    return float(match.group(1))


def test_a_refused_link_token_never_replaces_a_remembered_one(
    daemon: DaemonProcess, open_page: OpenPage
) -> None:
    page, console = open_page()
    remember_in_form(page, daemon)
    page.evaluate("window.stillTheSamePage = true")

    # A hostile page links to the open dashboard with its own token: the fragment changes, no reload.
    page.goto(f"{daemon.url}/#token=hostile-token")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("The token in the link was not used: the daemon refused it (403)")
    expect(page.locator("#connection-state")).to_have_text("Live")
    expect(page.locator("#dashboard-view")).to_be_visible()
    assert "hostile" not in page.url
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.evaluate("localStorage.getItem('loopdash.token')") == daemon.token
    assert page.evaluate("sessionStorage.getItem('loopdash.token')") == daemon.token

    # The same link opened in a new tab: the remembered token still signs it in.
    second, second_console = open_page(context=page.context)
    second.goto(f"{daemon.url}/#token=hostile-token")
    expect(second.locator("#notice")).to_contain_text("The token in the link was not used")
    expect(second.locator("#connection-state")).to_have_text("Live")
    expect(second.locator("#signin")).to_be_hidden()
    assert second.evaluate("localStorage.getItem('loopdash.token')") == daemon.token
    # The only errors are the browser's notes about the refused checks.
    assert [e for e in [*console, *second_console] if "status of 403" not in e] == []


def test_a_link_token_the_daemon_accepts_is_adopted(daemon: DaemonProcess, open_page: OpenPage) -> None:
    page, console = open_page()
    page.goto(daemon.url + "/")
    expect(page.locator("#signin")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    # Pasting the printed link into the tab that shows the form changes only the fragment.
    page.evaluate(f"window.location.hash = '#token={daemon.token}'")
    expect(page.locator("#connection-state")).to_have_text("Live")
    expect(page.locator("#signin")).to_be_hidden()
    assert page.evaluate("window.stillTheSamePage") is True
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('loopdash.token')") == daemon.token
    assert page.evaluate("localStorage.getItem('loopdash.token')") is None
    assert list(console) == []


def test_eight_tabs_share_one_stream_and_every_tab_gets_every_update(
    project: str, daemon: DaemonProcess, open_page: OpenPage
) -> None:
    first, _ = open_page()
    tabs = [first] + [open_page(context=first.context)[0] for _ in range(7)]
    for tab in tabs:
        sign_in(tab, daemon)  # each waits for "Live"
    assert open_streams(daemon) == 1.0
    logs_before = daemon.api("/api/logs?limit=0")["total"]

    make_progress(project, daemon, "eight tabs")
    for tab in tabs:
        expect(tab.locator("#log-list > li")).to_have_count(logs_before + 1)
        expect(tab.locator("#log-list > li").last).to_contain_text("eight tabs")
        expect(tab.locator("#story-grid li[data-story-id='US-005']")).to_have_attribute(
            "data-state", "completed"
        )

    # The leader (the first tab) closes: another tab takes the stream over, resuming.
    first.close()
    for tab in tabs[1:]:
        expect(tab.locator("#connection-state")).to_have_text("Live")
    make_progress(project, daemon, "after the leader left")
    for tab in tabs[1:]:
        expect(tab.locator("#log-list > li").last).to_contain_text("after the leader left", timeout=WAIT)
    assert open_streams(daemon) == 1.0


def test_a_ralph_log_renders_tables_code_nested_lists_links_and_right_to_left_text(
    tmp_path: Any, open_page: OpenPage
) -> None:
    root = os.path.join(str(tmp_path), "ralph-project")
    os.makedirs(os.path.join(root, "scripts", "ralph"))
    with open(os.path.join(root, "scripts", "ralph", "prd.json"), "w") as f:
        json.dump({"stories": [{"id": "US-1", "title": "Table", "status": "active"}]}, f)
    with open(os.path.join(root, "scripts", "ralph", "progress.txt"), "w") as f:
        f.write(
            "## Codebase Patterns\n- not an entry\n\n"
            "## 2026-01-10 - US-001: Markdown\n"
            "| file | lines |\n|:---|---:|\n| a.py | 12 |\n\n"
            "```python\nprint('<b>x</b>')\n```\n"
            "- outer\n  - inner\n\n"
            "[site](https://example.org) [bad](javascript:alert(1)) <script>alert(2)</script>\n\n"
            "## 2026-01-11 - US-002\nتم إصلاح الخطأ في الواجهة\n"
        )
    daemon = DaemonProcess(root, os.path.join(str(tmp_path), "twistd.log"))
    daemon.start()
    try:
        page, console = open_page()
        sign_in(page, daemon)
        entries = page.locator("#log-list > li")
        expect(entries).to_have_count(2)
        first = entries.first
        expect(first.locator("h3")).to_contain_text("2026-01-10 — US-001 Markdown")
        expect(first.locator("table td.align-right")).to_have_text("12")
        expect(first.locator("pre code")).to_have_text("print('<b>x</b>')")
        expect(first.locator("ul ul li")).to_have_text("inner")
        expect(first.locator("a[href='https://example.org']")).to_have_text("site")
        assert first.locator("a[href^='javascript']").count() == 0
        assert page.locator("#log-list script, #log-list b").count() == 0
        expect(first).to_contain_text("<script>alert(2)</script>")
        arabic = entries.last.locator(".md")
        assert arabic.get_attribute("dir") == "auto"
        assert arabic.evaluate("e => getComputedStyle(e.querySelector('p')).direction") == "rtl"
        # A loop without run directories has no metrics: that 404 is the only message.
        assert set(console) <= {
            "console.error: Failed to load resource: the server responded with a status of 404 (Not Found)"
        }
    finally:
        daemon.stop()

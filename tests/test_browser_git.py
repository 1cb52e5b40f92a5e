"""The page's git view in a real headless Chromium against a real daemon process (issue 21).

The project is the sample loop project inside a repository made with git; the
values the page must show are read from the REST API, never written here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from loopdash.cli.sample import create_sample_project
from tests.browser_support import DaemonProcess
from tests.conftest import OpenPage
from tests.gitrepos import commit, init
from tests.test_browser import expect, sign_in

T0 = 1_760_000_000


@pytest.fixture
def git_project(tmp_path: Any) -> str:
    root = os.path.join(str(tmp_path), "project")
    create_sample_project(root)
    init(root)
    commit(root, "chore: the loop's project", {"README.md": "# project\n"}, when=T0, add_all=True)
    commit(
        root,
        "feat: US-001 log provider usage\n\nWrites provider_usage.jsonl.",
        {
            "usage.py": "def log_usage():\n    return 'logged'\n",
            "README.md": "# project\n\nUsage is logged.\n",
        },
        when=T0 + 60,
    )
    commit(root, "feat: US-002 an icon", {"icon.png": bytes(range(256)) * 4}, when=T0 + 120)
    return root


def uncommitted(files: int) -> str:
    """The commits summary's words for ``files`` changed files (commits.js renderSummary)."""
    if files == 0:
        return "no uncommitted changes"
    return f"{files} file{'' if files == 1 else 's'} changed, not committed"


@pytest.fixture
def git_daemon(git_project: str, tmp_path: Any) -> Iterator[DaemonProcess]:
    process = DaemonProcess(git_project, os.path.join(str(tmp_path), "twistd.log"))
    process.start()
    yield process
    process.stop()


def test_the_page_shows_commits_beside_their_story_and_a_commit_dialog_with_its_diff(
    git_project: str, git_daemon: DaemonProcess, open_page: OpenPage
) -> None:
    listed = git_daemon.api("/api/commits")["commits"]
    assert [c["subject"] for c in listed][:2] == ["feat: US-002 an icon", "feat: US-001 log provider usage"]
    usage = listed[1]
    page, console = open_page()
    sign_in(page, git_daemon)

    rows = page.locator("#commit-list > li")
    expect(rows).to_have_count(len(listed))
    for index, row in enumerate(listed):
        expect(rows.nth(index).locator(".sha")).to_have_text(row["short_sha"])
        expect(rows.nth(index).locator(".commit-subject")).to_have_text(row["subject"])
    expect(page.locator("#commits-summary")).to_contain_text(f"{len(listed)} commits on main")

    # Beside the log entry of US-001 (the sample's first entry), the story's commit.
    entry = page.locator("#log-list > li", has_text="US-001").first
    chip = entry.locator(".entry-commits a")
    expect(chip).to_have_count(1)
    expect(chip).to_have_attribute("href", f"#/commits/{usage['sha']}")
    chip.click()

    dialog = page.locator("#commit-dialog")
    expect(dialog).to_be_visible()
    detail = git_daemon.api(f"/api/commits/{usage['sha']}")
    expect(dialog.locator("h2")).to_contain_text(detail["subject"])
    expect(dialog.locator(".diffstat tr")).to_have_count(len(detail["files"]))
    for file in detail["files"]:
        row = dialog.locator(".diffstat tr", has_text=file["path"])
        expect(row.locator(".num .ins")).to_have_text(f"+{file['insertions']}")
        expect(row.locator(".num .del")).to_have_text(f"−{file['deletions']}")
    added = dialog.locator(".diff .dl.add", has_text="return 'logged'")
    expect(added).to_have_count(1)
    assert added.evaluate("e => getComputedStyle(e).color") != dialog.locator(".diff .dl.ctx").first.evaluate(
        "e => getComputedStyle(e).color"
    )
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # The story dialog lists its commits; a binary file is named, not shown.
    page.goto(f"{git_daemon.url}/#/stories/US-002")
    story = page.locator("#story-dialog")
    icon_commit = listed[0]
    expect(story.locator(".story-commits li")).to_have_text(
        [f"{icon_commit['short_sha']} {icon_commit['subject']}"]
    )
    story.locator(".story-commits a").click()
    # The dialog shows this commit (a closed one keeps the last commit's diff, hidden).
    expect(page.locator("#commit-dialog h2")).to_contain_text(icon_commit["subject"])
    expect(page.locator("#commit-dialog .diff-file")).to_contain_text("Binary file: not shown.")
    page.keyboard.press("Escape")

    # A new commit appears without a reload, beside its story's log entry too.
    page.evaluate("window.stillTheSamePage = true")
    sha = commit(git_project, "feat: US-001 follow-up", {"usage.py": "def log_usage():\n    return 'ok'\n"})
    expect(rows.first.locator(".sha")).to_have_text(sha[:7])
    expect(entry.locator(".entry-commits a")).to_have_count(2)
    assert page.evaluate("window.stillTheSamePage") is True
    assert list(console) == []


def test_a_click_in_the_story_dialog_lands_though_a_status_update_arrives_during_it(
    git_project: str, git_daemon: DaemonProcess, open_page: OpenPage
) -> None:
    # A status update that changes nothing the story dialog shows used to rebuild it
    # anyway: a rebuild between press and release swallowed the click on its commit
    # link, and the closed commit dialog still held the previous commit's diff.
    icon_commit = git_daemon.api("/api/commits")["commits"][0]
    page, console = open_page()
    sign_in(page, git_daemon, "#/stories/US-002")
    link = page.locator("#story-dialog .story-commits a")
    expect(link).to_have_text(f"{icon_commit['short_sha']} {icon_commit['subject']}")
    summary = page.locator("#commits-summary")
    changed = git_daemon.api("/api/status")["working_tree"]["changed_files"]
    expect(summary).to_contain_text(uncommitted(changed))

    link.hover()
    page.mouse.down()
    # Only the working tree changes: the status_update carries it, no story changes.
    with open(os.path.join(git_project, "scratch.txt"), "w", encoding="utf-8") as f:
        f.write("not committed\n")
    expect(summary).to_contain_text(uncommitted(changed + 1))
    page.mouse.up()

    dialog = page.locator("#commit-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_contain_text(icon_commit["subject"])
    expect(dialog.locator(".diff-file")).to_contain_text("Binary file: not shown.")
    assert list(console) == []

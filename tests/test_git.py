"""The git view (issue 21) on real repositories made with git: the reader, then the daemon's answers.

Every repository is created here with the git command line: commits, a
branch with an upstream, a worktree, a rebase stopped on a conflict, a
shallow clone, a repository without commits, and none at all.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import pytest_twisted

from loopdash.loop.gitrepo import GitReader, commits_by_story, story_matcher
from loopdash.loop.project import run_id_start
from tests.conftest import DaemonFactory
from tests.contract import Contract, the_document
from tests.gitrepos import commit, git, init, write
from tests.support import RunningDaemon, open_stream

T0 = 1_760_000_000  # commit times: whole seconds, in the past


def sample_history(path: str) -> list[str]:
    """Three commits: a root adding two files, a story's change, a fix naming two stories."""
    init(path)
    first = commit(
        path, "chore: scaffold", {"a.txt": "one\ntwo\nthree\n", "b.txt": "bee\n"}, when=T0, add_all=True
    )
    second = commit(
        path,
        "feat: US-001 first story\n\nBody line naming US-0011 (not a story).",
        {"a.txt": "one\nTWO\nthree\nfour\n"},
        when=T0 + 60,
    )
    third = commit(path, "fix: US-002 and US-001 together", {"b.txt": "", "c.txt": "sea\n"}, when=T0 + 120)
    return [first, second, third]


# -- the reader ---------------------------------------------------------------------------


def test_page_lists_commits_newest_first_with_their_stats(tmp_path: Any) -> None:
    path = str(tmp_path / "repo")
    first, second, third = sample_history(path)
    reader = GitReader(path)
    page = reader.page(0, 20)
    assert page.state.state == "ok" and page.state.branch == "main" and page.state.head == third
    assert page.total == 3
    assert [c.sha for c in page.commits] == [third, second, first]
    newest = page.commits[0]
    assert (newest.subject, newest.author_name, newest.time) == (
        "fix: US-002 and US-001 together",
        "Loop Agent",
        T0 + 120,
    )
    # b.txt emptied (1 deletion), c.txt added (1 insertion).
    assert (newest.stats.files_changed, newest.stats.insertions, newest.stats.deletions) == (2, 1, 1)  # type: ignore[union-attr]
    # a.txt: "two" -> "TWO" and "four" added.
    assert page.commits[1].stats is not None and (
        page.commits[1].stats.insertions,
        page.commits[1].stats.deletions,
    ) == (2, 1)
    assert page.commits[1].body == "Body line naming US-0011 (not a story)."
    # The root commit is diffed against nothing: two files, four lines.
    assert page.commits[2].stats is not None and (
        page.commits[2].stats.files_changed,
        page.commits[2].stats.insertions,
    ) == (2, 4)
    # Paging and ranges.
    assert [c.sha for c in reader.page(1, 1).commits] == [second]
    assert reader.page(1, 1).total == 3
    assert [c.sha for c in reader.page(0, 20, since_sha=first).commits] == [third, second]
    assert reader.page(0, 20, since_sha=first).total == 2
    assert [c.sha for c in reader.page(0, 20, since_time=T0 + 60).commits] == [third, second]
    assert [c.sha for c in reader.page(0, 20, since_time=T0 + 30, until_time=T0 + 90).commits] == [second]
    with pytest.raises(LookupError):
        reader.page(0, 20, since_sha="deadbeef")


def test_count_follows_new_commits(tmp_path: Any) -> None:
    path = str(tmp_path / "repo")
    sample_history(path)
    reader = GitReader(path)
    assert reader.page(0, 1).total == 3
    fourth = commit(path, "feat: more", {"d.txt": "d\n"}, when=T0 + 180)
    page = reader.page(0, 1)
    assert page.total == 4 and page.commits[0].sha == fourth
    assert [c.sha for c in reader.new_commits(page.commits[0].parents[0], fourth, 50)] == [fourth]


def test_detail_caps_each_file_and_names_binary_files(tmp_path: Any) -> None:
    path = str(tmp_path / "repo")
    init(path)
    commit(path, "base", {"keep.txt": "x\n"}, when=T0)
    big = "".join(f"line {n:05d} of a long generated file\n" for n in range(2000))
    sha = commit(
        path,
        "feat: big and binary",
        {
            "big.txt": big,
            "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + bytes(range(256)),
            "keep.txt": "y\n",
        },
        when=T0 + 60,
    )
    reader = GitReader(path, file_diff_cap=4096)
    detail = reader.detail(sha[:10])
    assert detail is not None and detail.commit.sha == sha
    files = {f.path: f for f in detail.files}
    assert set(files) == {"big.txt", "image.png", "keep.txt"}
    big_file = files["big.txt"]
    assert big_file.status == "added" and big_file.insertions == 2000 and big_file.truncated
    assert (
        big_file.patch is not None and len(big_file.patch.encode()) <= 4096 and big_file.patch.endswith("\n")
    )
    assert big_file.patch.startswith("diff --git a/big.txt b/big.txt\n")
    image = files["image.png"]
    assert image.binary and image.patch is None and not image.truncated
    keep = files["keep.txt"]
    assert keep.status == "modified" and not keep.truncated and (keep.insertions, keep.deletions) == (1, 1)
    assert keep.patch is not None and "-x\n+y\n" in keep.patch
    assert detail.truncated and detail.files_omitted == 0
    assert reader.detail("0000000") is None


def test_a_worktree_is_read_from_its_own_head(tmp_path: Any) -> None:
    main = str(tmp_path / "repo")
    first, _, third = sample_history(main)
    tree = str(tmp_path / "tree")
    git(main, "worktree", "add", "-q", "-b", "side", tree, first)
    side = commit(tree, "feat: US-003 on the side", {"side.txt": "s\n"}, when=T0 + 300)
    state = GitReader(tree).state()
    assert state.state == "ok" and state.branch == "side" and state.head == side
    assert state.gitdir == os.path.join(main, ".git", "worktrees", "tree") + "/"
    # HEAD in the worktree's own directory; the branch ref in the common one.
    assert os.path.join(main, ".git", "worktrees", "tree") in state.watch
    assert os.path.join(main, ".git", "refs", "heads") in state.watch
    assert [c.sha for c in GitReader(tree).page(0, 10).commits] == [side, first]
    assert GitReader(main).state().head == third


def test_upstream_ahead_and_behind_and_changed_files(tmp_path: Any) -> None:
    origin = str(tmp_path / "origin")
    sample_history(origin)
    clone = str(tmp_path / "clone")
    git(str(tmp_path), "clone", "-q", origin, clone)
    commit(clone, "feat: local work", {"local.txt": "l\n"}, when=T0 + 400)
    commit(origin, "feat: remote work", {"remote.txt": "r\n"}, when=T0 + 500)
    git(clone, "fetch", "-q")
    write(clone, "untracked.txt", "u\n")
    write(clone, "a.txt", "changed\n")
    state = GitReader(clone).state()
    assert (state.upstream, state.ahead, state.behind, state.changed_files) == ("origin/main", 1, 1, 2)


def test_rebase_in_progress_lists_nothing_and_says_why(tmp_path: Any) -> None:
    path = str(tmp_path / "repo")
    sample_history(path)
    git(path, "checkout", "-q", "-b", "topic")
    commit(path, "topic change", {"a.txt": "topic\n"}, when=T0 + 200)
    git(path, "checkout", "-q", "main")
    commit(path, "main change", {"a.txt": "main\n"}, when=T0 + 210)
    git(path, "checkout", "-q", "topic")
    git(path, "rebase", "main", check=False)  # stops on the conflict in a.txt
    reader = GitReader(path)
    state = reader.state()
    assert state.state == "rebase" and state.branch == "topic"
    assert state.reason is not None and "rebase" in state.reason
    page = reader.page(0, 20)
    assert page.commits == () and page.total == 0 and page.state.state == "rebase"


def test_shallow_clone_lists_nothing_and_says_why(tmp_path: Any) -> None:
    origin = str(tmp_path / "origin")
    sample_history(origin)
    clone = str(tmp_path / "clone")
    git(str(tmp_path), "clone", "-q", "--depth", "1", f"file://{origin}", clone)
    page = GitReader(clone).page(0, 20)
    assert page.state.state == "shallow" and page.commits == () and page.total == 0


def test_empty_and_missing_repositories(tmp_path: Any) -> None:
    empty = init(str(tmp_path / "empty"))
    write(empty, "new.txt", "n\n")
    state = GitReader(empty).state()
    assert (state.state, state.branch, state.head, state.changed_files) == ("empty", "main", None, 1)
    assert GitReader(empty).page(0, 20).commits == ()
    nothing = str(tmp_path / "nothing")
    os.makedirs(nothing)
    assert GitReader(nothing).state().state == "missing"
    assert GitReader(str(tmp_path / "gone")).state().state == "missing"


def test_story_ids_are_whole_tokens_of_the_plan() -> None:
    match = story_matcher(("US-001", "US-002", "story-3"))
    assert match("feat: US-002, US-001 and US-0011") == ("US-001", "US-002")
    assert match("fix(story-3): done; xUS-001 no") == ("story-3",)
    assert match("nothing here") == ()
    by_story = commits_by_story(
        (("ccc", "US-001 again"), ("bbb", "US-002"), ("aaa", "US-001")), ("US-001", "US-002")
    )
    assert by_story == {"US-001": ("ccc", "aaa"), "US-002": ("bbb",)}


def sample_second(path: str) -> str:
    return git(path, "rev-parse", "--short=7", "HEAD~2")


def test_story_maps_merge_newest_first_and_stay_bounded() -> None:
    from loopdash.loop.gitrepo import merge_story_commits

    older = {"US-001": ("bbb", "aaa"), "US-002": ("ccc",)}
    assert merge_story_commits({"US-001": ("ddd",), "US-003": ("eee",)}, older) == {
        "US-001": ("ddd", "bbb", "aaa"),
        "US-002": ("ccc",),
        "US-003": ("eee",),
    }
    assert merge_story_commits({"US-001": ("new",)}, older, per_story=2) == {
        "US-001": ("new", "bbb"),
        "US-002": ("ccc",),
    }


# -- the daemon ---------------------------------------------------------------------------

CONTRACT = Contract(the_document())


async def checked(daemon: RunningDaemon, path: str, documented: str, status: int = 200) -> Any:
    answer = await daemon.get(path)
    assert answer.code == status, answer.body
    return CONTRACT.check(documented, "GET", status, answer.headers, answer.body)


async def git_settled(daemon: RunningDaemon, head: str | None) -> None:
    """Wait until the daemon's git view has read HEAD at ``head``."""
    from twisted.internet import reactor

    from tests.support import settle

    git_live = daemon.dashboard.api.git
    assert git_live is not None
    deadline = reactor.seconds() + 5
    while git_live.state.head != head or git_live.state.state == "reading":
        assert reactor.seconds() < deadline, git_live.state
        git_live.refresh()
        await settle(reactor, 0.02)


@pytest_twisted.ensureDeferred
async def test_api_serves_commits_details_and_stories(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    first, second, third = sample_history(sample_root)
    daemon = await daemon_factory(sample_root)
    await git_settled(daemon, third)
    page = await checked(daemon, "/api/commits", "/api/commits")
    assert page["git"] == {"state": "ok", "reason": None}
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    newest = page["commits"][0]
    assert newest == {
        "sha": third,
        "short_sha": third[:7],
        "subject": "fix: US-002 and US-001 together",
        "author_name": "Loop Agent",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + 120)),
        "story_ids": ["US-001", "US-002"],
        "files_changed": 2,
        "insertions": 1,
        "deletions": 1,
    }
    assert [c["sha"] for c in page["commits"]] == [third, second, first]
    assert page["commits"][2]["story_ids"] == []
    after = await checked(daemon, f"/api/commits?since={first}&limit=1", "/api/commits")
    assert [c["sha"] for c in after["commits"]] == [third] and after["total"] == 2

    detail = await checked(daemon, f"/api/commits/{second}", "/api/commits/{sha}")
    assert detail["sha"] == second and detail["parents"] == [first]
    assert detail["body"] == "Body line naming US-0011 (not a story)."
    assert detail["story_ids"] == ["US-001"]
    [a_file] = detail["files"]
    assert (a_file["path"], a_file["status"], a_file["insertions"], a_file["deletions"]) == (
        "a.txt",
        "modified",
        2,
        1,
    )
    assert a_file["diff"].startswith("diff --git a/a.txt b/a.txt\n") and "-two\n+TWO\n" in a_file["diff"]
    assert (a_file["binary"], a_file["truncated"], detail["truncated"]) == (False, False, False)

    stories = await checked(daemon, "/api/stories", "/api/stories")
    commits = {s["id"]: s["commits"] for s in stories["stories"]}
    assert commits["US-001"] == [third[:7], second[:7]]
    assert commits["US-002"] == [third[:7]]
    assert commits["US-003"] == []

    status = await checked(daemon, "/api/status", "/api/status")
    assert status["working_tree"]["branch"] == "main" and status["working_tree"]["head"] == third[:7]
    assert status["working_tree"]["git"] == {"state": "ok", "reason": None}
    assert status["working_tree"]["upstream"] is None and status["working_tree"]["ahead"] is None
    # The project's files are committed; the daemon's token directory (.claude-loop/dashboard/,
    # made at start) is not: one untracked directory, as `git status` shows it.
    assert status["working_tree"]["changed_files"] == 1
    write(sample_root, "a.txt", "edited, not committed\n")
    daemon.dashboard.api.git.refresh()  # type: ignore[union-attr]
    from twisted.internet import reactor

    from tests.support import settle

    await settle(reactor, 0.2)
    status = await checked(daemon, "/api/status", "/api/status")
    assert status["working_tree"]["changed_files"] == 2


@pytest.mark.parametrize(
    "sha, status",
    [("HEAD", 400), ("HEAD~1", 400), ("ABCDEF0", 400), ("abc", 400), ("a" * 41, 400), ("0123abcd", 404)],
)
@pytest_twisted.ensureDeferred
async def test_commit_sha_is_checked_before_the_repository(
    daemon_factory: DaemonFactory, sample_root: str, sha: str, status: int
) -> None:
    sample_history(sample_root)
    daemon = await daemon_factory(sample_root)
    body = await checked(daemon, f"/api/commits/{sha}", "/api/commits/{sha}", status)
    assert body["error"] in (
        f"Commit not found: {sha}",
        "Invalid commit sha: expected 4 to 40 lower-case hex digits",
    )
    assert body["error"].startswith("Commit not found" if status == 404 else "Invalid commit sha")


@pytest_twisted.ensureDeferred
async def test_since_must_be_a_run_or_a_sha(daemon_factory: DaemonFactory, sample_root: str) -> None:
    sample_history(sample_root)
    daemon = await daemon_factory(sample_root)
    bad = await checked(daemon, "/api/commits?since=yesterday", "/api/commits", 400)
    assert bad == {"error": "Invalid value for 'since': expected a run id or a commit sha"}
    unknown = await checked(daemon, "/api/commits?since=20000101_000000", "/api/commits", 404)
    assert unknown == {"error": "Run not found: 20000101_000000"}
    gone = await checked(daemon, "/api/commits?since=0123abcd", "/api/commits", 404)
    assert gone == {"error": "Commit not found: 0123abcd"}


@pytest_twisted.ensureDeferred
async def test_a_runs_commits_are_those_made_while_it_ran(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    daemon = await daemon_factory(sample_root)
    runs = (await daemon.get("/api/runs")).json()
    finished = runs[1]  # newest first: the current run, then the finished one
    start = run_id_start(finished["run_id"])
    assert start is not None
    init(sample_root)
    before = commit(sample_root, "before the run", {"x.txt": "0\n"}, when=start - 3600)
    during = commit(sample_root, "feat: US-002 during the run", {"x.txt": "1\n"}, when=start + 60)
    now = commit(sample_root, "feat: US-006 now", {"x.txt": "2\n"}, when=time.time())
    await git_settled(daemon, now)
    detail = await checked(daemon, f"/api/runs/{finished['run_id']}", "/api/runs/{run_id}")
    assert [c["sha"] for c in detail["commits"]] == [during]
    assert detail["commits"][0]["story_ids"] == ["US-002"]
    current = await checked(daemon, f"/api/runs/{runs[0]['run_id']}", "/api/runs/{run_id}")
    assert [c["sha"] for c in current["commits"]] == [now]
    since = await checked(daemon, f"/api/commits?since={finished['run_id']}", "/api/commits")
    assert [c["sha"] for c in since["commits"]] == [now, during] and before not in str(since)


@pytest.mark.parametrize("use_inotify", [True, False])
@pytest_twisted.ensureDeferred
async def test_a_new_commit_reaches_the_stream(
    daemon_factory: DaemonFactory, sample_root: str, use_inotify: bool
) -> None:
    _, _, third = sample_history(sample_root)
    daemon = await daemon_factory(
        sample_root, use_inotify=use_inotify, poll_interval=None if use_inotify else 0.2
    )
    await git_settled(daemon, third)
    stream = await open_stream(daemon)
    try:
        await stream.next_of_type("connected")
        fourth = commit(sample_root, "feat: US-003 streamed", {"d.txt": "d\n"}, when=T0 + 600)
        event = await stream.next_of_type("commit_added", timeout=5)
        CONTRACT.validate_schema("StreamEvent", event.data)
        assert event.data["data"]["sha"] == fourth
        assert event.data["data"]["story_ids"] == ["US-003"]
        assert (event.data["data"]["files_changed"], event.data["data"]["insertions"]) == (1, 1)
        status = await stream.next_of_type("status_update", timeout=5)
        assert status.data["data"]["working_tree"]["head"] == fourth[:7]
        # The story map grew by the new commit (added to it, not read again).
        stories = (await daemon.get("/api/stories")).json()["stories"]
        by_id = {s["id"]: s["commits"] for s in stories}
        assert by_id["US-003"] == [fourth[:7]] and by_id["US-001"] == [third[:7], sample_second(sample_root)]
    finally:
        stream.close()


@pytest.mark.parametrize("kind", ["missing", "empty", "shallow", "rebase"])
@pytest_twisted.ensureDeferred
async def test_unusual_repositories_answer_empty_lists_and_say_why(
    daemon_factory: DaemonFactory, tmp_path: Any, sample_root: str, kind: str
) -> None:
    root = sample_root
    if kind == "empty":
        init(root)
    elif kind == "shallow":
        origin = str(tmp_path / "origin")
        sample_history(origin)
        root = str(tmp_path / "clone")
        git(str(tmp_path), "clone", "-q", "--depth", "1", f"file://{origin}", root)
    elif kind == "rebase":
        sample_history(root)
        git(root, "checkout", "-q", "-b", "topic")
        commit(root, "topic change", {"a.txt": "topic\n"}, when=T0 + 200)
        git(root, "checkout", "-q", "main")
        commit(root, "main change", {"a.txt": "main\n"}, when=T0 + 210)
        git(root, "checkout", "-q", "topic")
        git(root, "rebase", "main", check=False)
    daemon = await daemon_factory(root)
    git_live = daemon.dashboard.api.git
    assert git_live is not None
    from twisted.internet import reactor

    from tests.support import settle

    while git_live.state.state == "reading":
        await settle(reactor, 0.02)
    page = await checked(daemon, "/api/commits", "/api/commits")
    assert page["commits"] == [] and page["total"] == 0
    assert page["git"]["state"] == kind and page["git"]["reason"]
    status = await checked(daemon, "/api/status", "/api/status")
    assert status["working_tree"]["git"]["state"] == kind
    if kind != "missing":
        stories = await checked(daemon, "/api/stories", "/api/stories")
        assert all(s["commits"] == [] for s in stories["stories"])


# -- loopdash watch -----------------------------------------------------------------------


def test_watch_shows_the_last_commit_and_a_line_per_commit() -> None:
    from loopdash.client.events import CommitAdded
    from loopdash.client.models import Commit
    from loopdash.client.watch import View, apply, describe, render_screen

    commit_row = Commit(
        "a" * 40, "aaaaaaa", "feat: US-001 done", "Loop Agent", "2026-01-13T20:00:00Z", ("US-001",), 2, 10, 3
    )
    event = CommitAdded(commit=commit_row, id="b-9")
    view = apply(View("http://d", trouble=None, headlines=0), event, now=0.0)
    assert "Commit   aaaaaaa feat: US-001 done (+10 -3, 2026-01-13T20:00:00Z)" in render_screen(
        view, 0.0, 120
    )
    assert describe(event) == "commit aaaaaaa feat: US-001 done (+10 -3, 2026-01-13T20:00:00Z)"


@pytest_twisted.ensureDeferred
async def test_watch_once_prints_the_branch_and_the_last_commit(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    from tests.test_watch import daemon_args, spawn

    _, _, third = sample_history(sample_root)
    daemon = await daemon_factory(sample_root)
    await git_settled(daemon, third)
    child = spawn([*daemon_args(daemon), "--once"])
    assert await child.exit_code(60) == 0  # a loaded 2-core machine starts Python slowly
    text = child.output.decode()
    row = (await daemon.get("/api/commits?limit=1")).json()["commits"][0]
    assert f"Commit   {third[:7]} fix: US-002 and US-001 together (+1 -1, {row['time']})" in text
    assert "Git      main, 1 uncommitted" in text


@pytest_twisted.ensureDeferred
async def test_a_project_in_a_worktree_serves_its_own_branch(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    from loopdash.cli.sample import create_sample_project

    main = str(tmp_path / "repo")
    first, _, third = sample_history(main)
    tree = str(tmp_path / "tree")
    git(main, "worktree", "add", "-q", "-b", "side", tree, first)
    create_sample_project(tree)
    side = commit(tree, "feat: US-004 in the worktree", {"side.txt": "s\n"}, when=T0 + 300, add_all=True)
    daemon = await daemon_factory(tree)
    await git_settled(daemon, side)
    page = await checked(daemon, "/api/commits", "/api/commits")
    assert [c["sha"] for c in page["commits"]] == [side, first]
    assert page["commits"][0]["story_ids"] == ["US-004"]
    status = await checked(daemon, "/api/status", "/api/status")
    assert (status["working_tree"]["branch"], status["working_tree"]["head"]) == ("side", side[:7])
    # A commit in the worktree reaches its stream; the main checkout's branch is not this project's.
    stream = await open_stream(daemon)
    try:
        await stream.next_of_type("connected")
        commit(main, "feat: on main, elsewhere", {"m.txt": "m\n"}, when=T0 + 400)
        newer = commit(tree, "feat: US-005 next", {"side.txt": "t\n"}, when=T0 + 500)
        event = await stream.next_of_type("commit_added", timeout=5)
        assert event.data["data"]["sha"] == newer
    finally:
        stream.close()
    assert third not in str((await daemon.get("/api/commits")).json())

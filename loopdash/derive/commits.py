"""The git view's API shapes: commits, a commit's detail, the working tree. Pure functions."""

from __future__ import annotations

from collections.abc import Callable

from loopdash.contract.shapes import (
    CommitAnswer,
    CommitDetailAnswer,
    CommitFileAnswer,
    CommitPageAnswer,
    GitInfoAnswer,
    WorkingTreeAnswer,
)
from loopdash.derive.status import iso_utc_at
from loopdash.loop.gitrepo import Commit, CommitDetail, CommitPage, FileDiff, GitState

Matcher = Callable[[str], tuple[str, ...]]


def git_value(state: GitState) -> GitInfoAnswer:
    """Whether commits can be listed, and why not: ``{"state": ..., "reason": ...}``."""
    return GitInfoAnswer(state=state.state, reason=state.reason)


def commit_value(commit: Commit, match: Matcher) -> CommitAnswer:
    """A commit as a row of /api/commits (and the data of ``commit_added``)."""
    stats = commit.stats
    return CommitAnswer(
        sha=commit.sha,
        short_sha=commit.short_sha,
        subject=commit.subject,
        author_name=commit.author_name,
        time=iso_utc_at(commit.time),
        story_ids=match(commit.subject + "\n" + commit.body),
        files_changed=stats.files_changed if stats is not None else 0,
        insertions=stats.insertions if stats is not None else 0,
        deletions=stats.deletions if stats is not None else 0,
    )


def commits_page_value(page: CommitPage, match: Matcher, limit: int, offset: int) -> CommitPageAnswer:
    return CommitPageAnswer(
        commits=tuple(commit_value(c, match) for c in page.commits),
        total=page.total,
        limit=limit,
        offset=offset,
        git=git_value(page.state),
    )


def file_value(diff: FileDiff) -> CommitFileAnswer:
    return CommitFileAnswer(
        path=diff.path,
        old_path=diff.old_path,
        status=diff.status,
        insertions=diff.insertions,
        deletions=diff.deletions,
        binary=diff.binary,
        truncated=diff.truncated,
        diff=diff.patch,
    )


def commit_detail_value(detail: CommitDetail, match: Matcher) -> CommitDetailAnswer:
    row = commit_value(detail.commit, match)
    return CommitDetailAnswer(
        sha=row.sha,
        short_sha=row.short_sha,
        subject=row.subject,
        author_name=row.author_name,
        time=row.time,
        story_ids=row.story_ids,
        files_changed=row.files_changed,
        insertions=row.insertions,
        deletions=row.deletions,
        body=detail.commit.body,
        parents=detail.commit.parents,
        files=tuple(file_value(f) for f in detail.files),
        files_omitted=detail.files_omitted,
        truncated=detail.truncated,
    )


def working_tree_value(state: GitState) -> WorkingTreeAnswer:
    """The status's ``working_tree``: branch, upstream and ahead/behind, uncommitted files."""
    return WorkingTreeAnswer(
        git=git_value(state),
        branch=state.branch,
        head=state.head[:7] if state.head is not None else None,
        upstream=state.upstream,
        ahead=state.ahead,
        behind=state.behind,
        changed_files=state.changed_files,
    )

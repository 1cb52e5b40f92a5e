"""The project's git repository, read with pygit2 (libgit2): commits, diffstats, diffs.

Plain blocking calls returning frozen values; the daemon runs them in one
thread of its own, never on the reactor. Every read is bounded: commits per
page and per walk, bytes of patch per file and per commit, blob sizes looked
at before a patch is made. pygit2 was chosen over dulwich by measurement
(bench/git_libraries.py: thirty times faster walking 10,000 commits).

A repository that is missing, shallow, in the middle of a rebase or without
commits is a normal state (:class:`GitState` says which and why), never an
error: the lists are then empty. The repository is found from the project
root upwards, as git does; a worktree's ``.git`` file leads to its own
directory (HEAD, index, rebase state) and to the common one (refs, objects).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pygit2
from pygit2.enums import DiffFind, RepositoryState, SortMode

#: How far any walk goes: counting, skipping to an offset, finding a run's commits.
MAX_WALK = 100_000
#: Commits whose messages are read to match story ids (newest first).
MAX_STORY_SCAN = 5_000
#: Commits' diffstats remembered (they never change for a given sha).
STATS_CACHE = 4_096
#: Bytes of one file's patch served before it is cut (``truncated``); an option of the daemon.
DEFAULT_FILE_DIFF_CAP = 1 << 20
#: A commit's patches together stop at this many times the per-file cap.
COMMIT_DIFF_FACTOR = 4
#: Files listed in a commit's detail; those beyond are counted, not listed.
MAX_FILES = 1_000
#: Blobs larger than this are named with no patch and no line counts (libgit2 would load them whole).
MAX_BLOB = 16 << 20
#: A message's body is kept up to this many characters.
MAX_BODY = 4_096

SHA_PATTERN = re.compile(r"\A[0-9a-f]{4,40}\Z")

REBASE_STATES = frozenset(
    {
        RepositoryState.REBASE,
        RepositoryState.REBASE_INTERACTIVE,
        RepositoryState.REBASE_MERGE,
        RepositoryState.APPLY_MAILBOX_OR_REBASE,
    }
)


def is_sha(value: str) -> bool:
    """Whether ``value`` is a lower-case hex object name or prefix (4 to 40 digits)."""
    return SHA_PATTERN.match(value) is not None


def limit_libgit2_memory(cache_bytes: int = 32 << 20, mapped_bytes: int = 256 << 20) -> None:
    """Bound libgit2's process-wide object cache and pack mappings (defaults: 256 MB and 8 GB)."""
    pygit2.settings.cache_max_size(cache_bytes)
    pygit2.settings.mwindow_mapped_limit = mapped_bytes


@dataclass(frozen=True)
class GitState:
    """The repository as a whole, at one moment.

    ``state`` is ``ok``, ``missing`` (no repository at or above the root),
    ``empty`` (no commit yet), ``shallow``, ``rebase`` (a rebase or ``git am``
    is in progress) or ``unreadable``; ``reason`` says it in words (None when ok).
    """

    state: str
    reason: str | None
    gitdir: str | None = None
    workdir: str | None = None
    #: The branch HEAD names (also while empty or rebasing); None when detached or missing.
    branch: str | None = None
    head: str | None = None
    upstream: str | None = None
    ahead: int | None = None
    behind: int | None = None
    #: Files with changes not committed (staged, unstaged, untracked; ignored ones not).
    changed_files: int | None = None
    #: Directories to watch for HEAD, the branch ref and packed-refs.
    watch: tuple[str, ...] = ()
    #: The file names in those directories whose change matters.
    watch_names: frozenset[str] = frozenset()

    @property
    def usable(self) -> bool:
        return self.state == "ok"

    @property
    def identity(self) -> tuple[object, ...]:
        """Equal identities serve equal lists: what caches are keyed by."""
        return (self.state, self.gitdir, self.branch, self.head)


@dataclass(frozen=True)
class DiffStat:
    files_changed: int
    insertions: int
    deletions: int


@dataclass(frozen=True)
class Commit:
    """One commit: ``time`` is the committer's time (seconds since the epoch)."""

    sha: str
    subject: str
    body: str
    author_name: str
    time: float
    parents: tuple[str, ...]
    stats: DiffStat | None = None

    @property
    def short_sha(self) -> str:
        return self.sha[:7]


@dataclass(frozen=True)
class FileDiff:
    """One file of a commit: ``patch`` is its unified diff (cut at a line when ``truncated``)."""

    path: str
    old_path: str | None
    status: str
    insertions: int
    deletions: int
    binary: bool
    patch: str | None
    truncated: bool


@dataclass(frozen=True)
class CommitDetail:
    commit: Commit
    files: tuple[FileDiff, ...]
    #: Files not listed (beyond MAX_FILES).
    files_omitted: int
    truncated: bool


@dataclass(frozen=True)
class CommitPage:
    state: GitState
    commits: tuple[Commit, ...]
    #: Commits in the range (counted up to MAX_WALK).
    total: int


_STATUS = {"A": "added", "D": "deleted", "M": "modified", "R": "renamed", "C": "copied", "T": "typechange"}


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _split_message(message: str) -> tuple[str, str]:
    subject, _, body = message.strip("\n").partition("\n")
    return subject.strip(), body.strip("\n")[:MAX_BODY]


def _cut(patch: bytes, cap: int) -> tuple[bytes, bool]:
    """``patch`` up to ``cap`` bytes, cut after a whole line; whether it was cut."""
    if len(patch) <= cap:
        return patch, False
    end = patch.rfind(b"\n", 0, cap)
    return patch[: end + 1 if end >= 0 else 0], True


class GitReader:
    """Reads one project's repository. Not thread-safe: call it from one thread.

    The repository is found again when it disappears or appears (checked on
    :meth:`state`), so a ``git init`` in a running project is noticed.
    """

    def __init__(self, root: str, file_diff_cap: int = DEFAULT_FILE_DIFF_CAP) -> None:
        self.root = root
        self.file_diff_cap = file_diff_cap
        self._repo: pygit2.Repository | None = None
        self._gitdir: str | None = None
        self._stats: OrderedDict[str, DiffStat] = OrderedDict()
        #: Each range's commit count, with the head it was counted at.
        self._totals: dict[tuple[object, ...], tuple[str, int]] = {}
        self._lock = threading.Lock()

    # -- the repository and its state ---------------------------------------------------

    def _open(self) -> pygit2.Repository | None:
        gitdir = pygit2.discover_repository(self.root)
        if gitdir is None:
            self._repo = self._gitdir = None
            return None
        if gitdir != self._gitdir or self._repo is None:
            self._repo, self._gitdir = pygit2.Repository(gitdir), gitdir
            self._totals.clear()
        return self._repo

    def state(self) -> GitState:
        """Where the repository is, what HEAD is, and the working tree's changes. Never raises."""
        with self._lock:
            try:
                return self._state()
            except (pygit2.GitError, OSError, KeyError, ValueError) as e:
                self._repo = self._gitdir = None
                return GitState("unreadable", f"Cannot read the git repository: {e}")

    def _state(self, with_changes: bool = True) -> GitState:
        """The state; ``with_changes``: count the working tree's changed files (a scan of the tree)."""
        if not os.path.isdir(self.root):
            return GitState("missing", "The project root does not exist")
        repo = self._open()
        if repo is None:
            return GitState("missing", "The project is not inside a git repository")
        gitdir = repo.path
        common = _common_dir(gitdir)
        branch = _head_branch(gitdir)
        watch = tuple(dict.fromkeys([gitdir.rstrip("/"), common.rstrip("/")]))
        names = {"HEAD", "packed-refs", "index", "shallow", "rebase-merge", "rebase-apply"}
        if branch is not None:
            ref_dir = os.path.dirname(os.path.join(common, "refs", "heads", branch))
            watch += (ref_dir,)
            names.add(os.path.basename(branch))
        base = GitState(
            "ok",
            None,
            gitdir=gitdir,
            workdir=repo.workdir,
            branch=branch,
            changed_files=self._changed_files(repo) if with_changes else None,
            watch=watch,
            watch_names=frozenset(names),
        )
        if repo.head_is_unborn:
            return replace(base, state="empty", reason="The repository has no commits yet")
        base = replace(base, head=str(repo.head.target))
        if repo.state() in REBASE_STATES:
            reason = "A rebase is in progress; commits are listed again once it ends"
            return replace(base, state="rebase", reason=reason)
        if repo.is_shallow:
            return replace(
                base, state="shallow", reason="The repository is a shallow clone: its history is cut"
            )
        upstream, ahead, behind = _upstream(repo, branch)
        return replace(base, upstream=upstream, ahead=ahead, behind=behind)

    @staticmethod
    def _changed_files(repo: pygit2.Repository) -> int | None:
        if repo.is_bare:
            return None
        # "normal": an untracked directory counts once, as `git status` shows it.
        return len(repo.status(untracked_files="normal", ignored=False))

    # -- commits ------------------------------------------------------------------------

    def _walk(self, repo: pygit2.Repository, head: str, hide: str | None = None) -> Iterator[pygit2.Commit]:
        walker = repo.walk(pygit2.Oid(hex=head), SortMode.NONE)
        if hide is not None:
            walker.hide(pygit2.Oid(hex=hide))
        for count, commit in enumerate(walker):
            if count >= MAX_WALK:
                return
            yield commit

    def _commit(self, repo: pygit2.Repository, commit: pygit2.Commit, with_stats: bool) -> Commit:
        subject, body = _split_message(_decode(commit.raw_message))
        sha = str(commit.id)
        return Commit(
            sha=sha,
            subject=subject,
            body=body,
            author_name=commit.author.name,
            time=float(commit.commit_time),
            parents=tuple(str(p) for p in commit.parent_ids),
            stats=self._stats_of(repo, commit) if with_stats else None,
        )

    def _diff(self, repo: pygit2.Repository, commit: pygit2.Commit) -> pygit2.Diff:
        if commit.parents:
            diff = commit.parents[0].tree.diff_to_tree(commit.tree)
        else:
            diff = commit.tree.diff_to_tree(swap=True)
        # Renames as git shows them (diff.renames is on by default since git 2.9).
        diff.find_similar(DiffFind.FIND_RENAMES)
        return diff

    def _stats_of(self, repo: pygit2.Repository, commit: pygit2.Commit) -> DiffStat:
        sha = str(commit.id)
        cached = self._stats.get(sha)
        if cached is not None:
            self._stats.move_to_end(sha)
            return cached
        diff = self._diff(repo, commit)
        if any(self._too_large(repo, delta) for delta in diff.deltas):
            # libgit2 would load every blob whole: count files only, lines from the small ones.
            insertions = deletions = 0
            for index, delta in enumerate(diff.deltas):
                if not self._too_large(repo, delta):
                    patch = diff[index]
                    if patch is not None:
                        _, adds, dels = patch.line_stats
                        insertions, deletions = insertions + adds, deletions + dels
            stats = DiffStat(len(diff), insertions, deletions)
        else:
            raw = diff.stats
            stats = DiffStat(raw.files_changed, raw.insertions, raw.deletions)
        self._stats[sha] = stats
        if len(self._stats) > STATS_CACHE:
            self._stats.popitem(last=False)
        return stats

    @staticmethod
    def _too_large(repo: pygit2.Repository, delta: pygit2.DiffDelta) -> bool:
        for side in (delta.old_file, delta.new_file):
            if side.id.raw != bytes(20):
                try:
                    if repo.odb.read_header(side.id)[1] > MAX_BLOB:
                        return True
                except (KeyError, pygit2.GitError):
                    return False  # a missing object (a shallow boundary): libgit2 reports it itself
        return False

    def _usable(self) -> tuple[GitState, pygit2.Repository | None]:
        # Pages need HEAD and the state, not the working tree's changes.
        state = self._state(with_changes=False)
        return state, (self._repo if state.usable else None)

    def page(
        self,
        offset: int,
        limit: int,
        since_sha: str | None = None,
        since_time: float | None = None,
        until_time: float | None = None,
    ) -> CommitPage:
        """Commits of HEAD, newest first: ``offset``/``limit`` of those after ``since_sha``
        (a commit reachable from HEAD), or committed in [``since_time``, ``until_time``].

        An unknown ``since_sha`` raises :class:`LookupError`; a repository not ``ok``
        gives an empty page with its state.
        """
        with self._lock:
            try:
                state, repo = self._usable()
            except (pygit2.GitError, OSError) as e:
                return CommitPage(GitState("unreadable", f"Cannot read the git repository: {e}"), (), 0)
            if repo is None or state.head is None:
                return CommitPage(state, (), 0)
            hide = None
            if since_sha is not None:
                hide = self._resolve(repo, since_sha)
                if hide is None:
                    raise LookupError(since_sha)
            commits: list[Commit] = []
            seen = 0
            for commit in self._walk(repo, state.head, hide):
                if not _in_range(commit.commit_time, since_time, until_time):
                    if since_time is not None and commit.commit_time < since_time:
                        break  # time order: everything older follows
                    continue
                if seen >= offset:
                    commits.append(self._commit(repo, commit, with_stats=True))
                    if len(commits) >= limit:
                        break
                seen += 1
            total = self._count(repo, state.head, hide, since_time, until_time)
            return CommitPage(state, tuple(commits), total)

    def _count(
        self,
        repo: pygit2.Repository,
        head: str,
        hide: str | None,
        since_time: float | None,
        until_time: float | None,
    ) -> int:
        """Commits in the range, remembered per range: after a new commit only the new ones are walked."""
        key = (self._gitdir, hide, since_time, until_time)
        known = self._totals.get(key)
        if known is not None and known[0] == head:
            return known[1]
        # Walked from HEAD, hiding `hide` and (when HEAD only moved forward) the head last
        # counted at: what is new is added to the count known.
        count = 0
        walker = repo.walk(pygit2.Oid(hex=head), SortMode.NONE)
        if known is not None and known[0] in repo and repo.descendant_of(head, known[0]):
            count = known[1]
            walker.hide(pygit2.Oid(hex=known[0]))
        if hide is not None:
            walker.hide(pygit2.Oid(hex=hide))
        for walked, commit in enumerate(walker):
            if walked >= MAX_WALK or count >= MAX_WALK:
                break
            if _in_range(commit.commit_time, since_time, until_time):
                count += 1
            elif since_time is not None and commit.commit_time < since_time:
                break
        if len(self._totals) >= 64:
            self._totals.clear()
        self._totals[key] = (head, count)
        return count

    def new_commits(self, old_head: str | None, new_head: str, limit: int) -> tuple[Commit, ...]:
        """Commits reachable from ``new_head`` and not from ``old_head``, oldest first, at most ``limit`` (the newest)."""
        with self._lock:
            repo = self._repo
            if repo is None:
                return ()
            try:
                found = []
                hide = old_head if old_head is not None and old_head in repo else None
                for commit in self._walk(repo, new_head, hide):
                    found.append(self._commit(repo, commit, with_stats=True))
                    if len(found) >= limit:
                        break
            except (pygit2.GitError, KeyError, ValueError):
                return ()
            return tuple(reversed(found))

    def descends(self, ancestor: str | None, head: str | None) -> bool:
        """Whether ``head`` is ``ancestor`` or a descendant of it (False when either is unknown)."""
        with self._lock:
            repo = self._repo
            if repo is None or ancestor is None or head is None:
                return False
            if ancestor == head:
                return True
            try:
                return bool(repo.descendant_of(head, ancestor))
            except (pygit2.GitError, KeyError, ValueError):
                return False

    def messages(self, limit: int = MAX_STORY_SCAN) -> tuple[tuple[str, str], ...]:
        """(short sha, full message) of HEAD's newest ``limit`` commits; () unless the repository is ok."""
        with self._lock:
            try:
                state, repo = self._usable()
                if repo is None or state.head is None:
                    return ()
                out = []
                for commit in self._walk(repo, state.head):
                    out.append((str(commit.id)[:7], _decode(commit.raw_message)))
                    if len(out) >= limit:
                        break
                return tuple(out)
            except (pygit2.GitError, OSError):
                return ()

    def _resolve(self, repo: pygit2.Repository, prefix: str) -> str | None:
        if not is_sha(prefix):
            return None
        try:
            found = repo[prefix] if len(prefix) == 40 else repo.git_object_lookup_prefix(prefix)
        except (KeyError, ValueError, pygit2.GitError):
            return None  # not there, or an ambiguous prefix
        if found is None or found.type != pygit2.enums.ObjectType.COMMIT:
            return None
        return str(found.id)

    def detail(self, prefix: str) -> CommitDetail | None:
        """One commit with each file's stats and patch, bounded; None when there is no such commit."""
        with self._lock:
            try:
                repo = self._open()
            except (pygit2.GitError, OSError):
                return None
            if repo is None:
                return None
            sha = self._resolve(repo, prefix)
            if sha is None:
                return None
            commit = repo[sha]
            assert isinstance(commit, pygit2.Commit)
            try:
                return self._detail(repo, commit)
            except pygit2.GitError:
                return None  # a shallow boundary's parent is missing

    def _detail(self, repo: pygit2.Repository, commit: pygit2.Commit) -> CommitDetail:
        diff = self._diff(repo, commit)
        budget = self.file_diff_cap * COMMIT_DIFF_FACTOR
        files: list[FileDiff] = []
        truncated = False
        for index, delta in enumerate(diff.deltas):
            if index >= MAX_FILES:
                truncated = True
                break
            old_path = delta.old_file.path if delta.status_char() in ("R", "C") else None
            status = _STATUS.get(delta.status_char(), "modified")
            if self._too_large(repo, delta):
                files.append(FileDiff(delta.new_file.path, old_path, status, 0, 0, False, None, True))
                truncated = True
                continue
            patch = diff[index]
            if patch is None:  # nothing to show (a mode change)
                files.append(FileDiff(delta.new_file.path, old_path, status, 0, 0, False, "", False))
                continue
            _, adds, dels = patch.line_stats
            binary = bool(patch.delta.is_binary)
            text: str | None = None
            cut = False
            if not binary:
                data, cut = _cut(patch.data, min(self.file_diff_cap, budget))
                budget -= len(data)
                text = _decode(data)
            truncated = truncated or cut
            files.append(FileDiff(delta.new_file.path, old_path, status, adds, dels, binary, text, cut))
        summary = self._commit(repo, commit, with_stats=True)
        return CommitDetail(summary, tuple(files), max(len(diff) - MAX_FILES, 0), truncated)


def _in_range(when: float, since_time: float | None, until_time: float | None) -> bool:
    return (since_time is None or when >= since_time) and (until_time is None or when <= until_time)


def _common_dir(gitdir: str) -> str:
    """A worktree's common directory (its ``commondir`` file), or ``gitdir`` itself."""
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as f:
            common = f.read().strip()
    except OSError:
        return gitdir
    return os.path.normpath(os.path.join(gitdir, common)) + "/"


def _head_branch(gitdir: str) -> str | None:
    """The branch HEAD names (``refs/heads/<branch>``); while rebasing, the branch being rebased."""
    for rebase_dir in ("rebase-merge", "rebase-apply"):
        try:
            with open(os.path.join(gitdir, rebase_dir, "head-name"), encoding="utf-8") as f:
                name = f.read().strip()
        except OSError:
            continue
        return name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else None
    try:
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8") as f:
            head = f.read(4096).strip()
    except OSError:
        return None
    if head.startswith("ref: refs/heads/"):
        return head.removeprefix("ref: refs/heads/")
    return None


def _upstream(repo: pygit2.Repository, branch: str | None) -> tuple[str | None, int | None, int | None]:
    if branch is None:
        return None, None, None
    try:
        local = repo.branches.local.get(branch)
        upstream = local.upstream if local is not None else None
    except (pygit2.GitError, KeyError, ValueError):
        return None, None, None
    if upstream is None or local is None:
        return None, None, None
    ahead, behind = repo.ahead_behind(local.target, upstream.target)
    return upstream.shorthand, ahead, behind


def story_matcher(story_ids: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """A function finding the plan's story ids in a commit message, each once, in plan order.

    An id counts as a whole token: ``US-1`` is not found in ``US-12``.
    """
    if not story_ids:
        return lambda message: ()
    order = {story_id: index for index, story_id in enumerate(story_ids)}
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(re.escape(s) for s in sorted(order, key=len, reverse=True)) + r")(?![\w])"
    )

    def match(message: str) -> tuple[str, ...]:
        found = set(pattern.findall(message))
        return tuple(sorted(found, key=order.__getitem__))

    return match


def commits_by_story(
    messages: tuple[tuple[str, str], ...], story_ids: tuple[str, ...], per_story: int = 50
) -> dict[str, tuple[str, ...]]:
    """Each story id's commits (short shas, newest first, at most ``per_story``) from (short sha, message) pairs."""
    match = story_matcher(story_ids)
    found: dict[str, list[str]] = {}
    for short_sha, message in messages:
        for story_id in match(message):
            shas = found.setdefault(story_id, [])
            if len(shas) < per_story:
                shas.append(short_sha)
    return {story_id: tuple(shas) for story_id, shas in found.items()}


def merge_story_commits(
    newer: dict[str, tuple[str, ...]], older: dict[str, tuple[str, ...]], per_story: int = 50
) -> dict[str, tuple[str, ...]]:
    """Two story maps of :func:`commits_by_story`, ``newer`` first, each story's list cut at ``per_story``."""
    merged = dict(older)
    for story_id, shas in newer.items():
        merged[story_id] = (shas + older.get(story_id, ()))[:per_story]
    return merged

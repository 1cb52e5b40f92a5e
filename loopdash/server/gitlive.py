"""The git view, served: the git reader run in a thread of its own, off the reactor.

:class:`GitLive` owns one worker thread (a ``ThreadPool`` of one: pygit2
objects are used from that thread only, and git reads queue behind each
other rather than compete with the reactor for the two cores). It keeps the
latest :class:`GitState` (for ``working_tree`` in the status) and each story's
commits (for /api/stories), both refreshed by :meth:`refresh` when the watcher
hears HEAD, the branch ref or packed-refs change, and on each poll. Commit
pages ask the reader in the thread each time: it reads HEAD (two small files)
and answers from caches keyed by HEAD; a commit's detail is immutable for a
sha and kept encoded, bounded in bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from loopdash.contract.codec import plain_object
from loopdash.contract.shapes import WorkingTreeAnswer
from loopdash.derive.commits import (
    Matcher,
    commit_detail_value,
    commit_value,
    commits_page_value,
    working_tree_value,
)
from loopdash.loop.gitrepo import (
    Commit,
    CommitPage,
    GitReader,
    GitState,
    commits_by_story,
    merge_story_commits,
    story_matcher,
)
from loopdash.loop.models import JSONObject
from loopdash.server.encoding import encode_json

T = TypeVar("T")

#: Commits announced by one refresh (a push of a thousand commits announces its newest 50).
MAX_NEW_COMMITS = 50
#: Commits listed in a run's detail.
MAX_RUN_COMMITS = 200
#: Bytes of encoded commit details kept.
MAX_DETAIL_CACHE = 8 << 20

NOT_READ_YET = GitState("reading", "The repository has not been read yet")

Refreshed = Callable[[tuple[Commit, ...], bool], None]


def new_git_pool() -> ThreadPool:
    """The one git thread: pygit2 objects are used from it only."""
    return ThreadPool(minthreads=1, maxthreads=1, name="loopdash-git")


class GitThread(Service):
    """The daemon's one git thread, shared by every project's :class:`GitLive`."""

    def __init__(self) -> None:
        self.pool = new_git_pool()

    def startService(self) -> None:
        Service.startService(self)
        self.pool.start()

    def stopService(self) -> None:
        Service.stopService(self)
        self.pool.stop()


class GitLive(Service):
    """The project's repository as the API and the watcher see it."""

    log = Logger(namespace="loopdash.server.gitlive")

    def __init__(
        self,
        reader: GitReader,
        reactor: Any,
        plan_ids: Callable[[], tuple[str, ...]],
        pool: ThreadPool | None = None,
    ) -> None:
        self.reader = reader
        self.reactor = reactor
        self.plan_ids = plan_ids
        #: A pool shared by every project of the daemon (one git thread, not one per
        #: project) is started and stopped by its owner (:class:`GitThread`), not here.
        self.owns_pool = pool is None
        self.pool = pool if pool is not None else new_git_pool()
        self.state: GitState = NOT_READ_YET
        #: Each story id's commits (short shas, newest first), for the state and plan below.
        self.story_commits: dict[str, tuple[str, ...]] = {}
        self._story_key: tuple[object, ...] | None = None
        #: Bumped whenever the state or the story map changes (keys of encoded answers).
        self.version = 0
        self._refreshing = False
        self._again = False
        self._matcher: tuple[tuple[str, ...], Matcher] | None = None
        self._details: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._detail_bytes = 0
        #: Called after each refresh with the new commits (oldest first) and whether the state changed.
        self.on_refreshed: Refreshed = lambda commits, changed: None

    def startService(self) -> None:
        Service.startService(self)
        if self.owns_pool:
            self.pool.start()

    def stopService(self) -> None:
        Service.stopService(self)
        if self.owns_pool:
            self.pool.stop()

    def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self.reactor, self.pool, fn, *args)

    def matcher(self) -> Matcher:
        """Finds the plan's story ids in a message (rebuilt when the plan's ids change)."""
        ids = self.plan_ids()
        if self._matcher is None or self._matcher[0] != ids:
            self._matcher = (ids, story_matcher(ids))
        return self._matcher[1]

    # -- refreshing ----------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the repository's state again in the thread; one at a time, coalesced."""
        if self._refreshing:
            self._again = True
            return
        self._refreshing = True
        self._again = False
        previous, story_key, ids = self.state, self._story_key, self.plan_ids()
        job = self._run(self._refresh_in_thread, previous, story_key, ids, self.story_commits)
        job.addCallbacks(self._refreshed, self._refresh_failed)

    def _refresh_in_thread(
        self,
        previous: GitState,
        story_key: tuple[object, ...] | None,
        ids: tuple[str, ...],
        known: dict[str, tuple[str, ...]],
    ) -> tuple[GitState, tuple[Commit, ...], tuple[object, ...], dict[str, tuple[str, ...]] | None]:
        state = self.reader.state()
        new: tuple[Commit, ...] = ()
        if (
            state.usable
            and previous.state in ("ok", "empty")
            and previous.gitdir == state.gitdir
            and previous.head != state.head
            and state.head is not None
        ):
            new = self.reader.new_commits(previous.head, state.head, MAX_NEW_COMMITS)
        key = (state.identity, ids)
        stories = None
        if key == story_key:
            pass
        elif not state.usable:
            stories = {}
        elif (
            story_key == (previous.identity, ids)
            and previous.usable
            and 0 < len(new) < MAX_NEW_COMMITS
            and self.reader.descends(previous.head, state.head)
        ):
            # The branch moved forward by a few commits (a loop's usual step): add
            # them to the map rather than read 5,000 messages again (200 ms on 10,000 commits).
            fresh = tuple((c.short_sha, c.subject + "\n" + c.body) for c in reversed(new))
            stories = merge_story_commits(commits_by_story(fresh, ids), known)
        else:
            stories = commits_by_story(self.reader.messages(), ids)
        return state, new, key, stories

    def _refreshed(
        self,
        result: tuple[GitState, tuple[Commit, ...], tuple[object, ...], dict[str, tuple[str, ...]] | None],
    ) -> None:
        state, new, key, stories = result
        changed = state != self.state
        self.state = state
        if stories is not None:
            changed = changed or stories != self.story_commits
            self.story_commits, self._story_key = stories, key
        if changed:
            self.version += 1
        self._done()
        if not self.running:
            return  # stopped meanwhile (a project removed while its refresh ran in the shared thread)
        try:
            self.on_refreshed(new, changed)
        except Exception:
            self.log.failure("Publishing the git refresh failed")

    def _refresh_failed(self, failure: Any) -> None:
        self.log.failure("Reading the git repository failed; will try again", failure)
        self._done()

    def _done(self) -> None:
        self._refreshing = False
        if self._again and self.running:
            self.refresh()

    # -- answers ---------------------------------------------------------------------------

    def working_tree(self) -> WorkingTreeAnswer:
        return working_tree_value(self.state)

    def commit_json(self, commit: Commit) -> JSONObject:
        return plain_object(commit_value(commit, self.matcher()))

    async def commits_body(
        self,
        offset: int,
        limit: int,
        since_sha: str | None = None,
        since_time: float | None = None,
        until_time: float | None = None,
    ) -> bytes:
        """A page of /api/commits; :class:`LookupError` for an unknown ``since_sha``."""
        page: CommitPage = await self._run(self.reader.page, offset, limit, since_sha, since_time, until_time)
        return encode_json(commits_page_value(page, self.matcher(), limit, offset))

    async def run_commits(self, since_time: float, until_time: float | None) -> list[JSONObject]:
        """The commits made in [since_time, until_time] (newest first, at most MAX_RUN_COMMITS)."""
        page = await self._run(self.reader.page, 0, MAX_RUN_COMMITS, None, since_time, until_time)
        match = self.matcher()
        return [plain_object(commit_value(c, match)) for c in page.commits]

    async def detail_body(self, sha: str) -> bytes | None:
        """A commit's detail, or None when the repository has no such commit."""
        key = (sha, self.plan_ids())
        cached = self._details.get(key)
        if cached is not None:
            self._details.move_to_end(key)
            return cached
        detail = await self._run(self.reader.detail, sha)
        if detail is None:
            return None
        body = encode_json(commit_detail_value(detail, self.matcher()))
        if len(sha) == 40:  # a prefix may name another commit tomorrow
            self._details[key] = body
            self._detail_bytes += len(body)
            while self._detail_bytes > MAX_DETAIL_CACHE and self._details:
                _, evicted = self._details.popitem(last=False)
                self._detail_bytes -= len(evicted)
        return body

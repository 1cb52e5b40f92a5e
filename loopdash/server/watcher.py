"""The watcher: observe the project, diff with the last observation, publish.

A ``LoopingCall`` polls (cheap when nothing changed: the readers stat before
they read). On Linux an inotify watch on the root, the runs directory and the
current run wakes the watcher as soon as a file is written; polling stays as
the fallback and the only mechanism where inotify is missing.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.python.threadpool import ThreadPool

from loopdash.contract.codec import copied
from loopdash.contract.shapes import IterationsResetAnswer, LogsResetAnswer, StoriesResetAnswer
from loopdash.derive.changes import (
    MAX_ITEM_EVENTS,
    RESETS,
    Change,
    IterationAdded,
    IterationsReset,
    LogAppended,
    LogReset,
    LogRewritten,
    Observation,
    RunFinished,
    RunResumed,
    RunStalled,
    RunStarted,
    RunStopped,
    StatusChanged,
    StoriesReset,
    StoryUpdated,
    diff,
    status_changes,
)
from loopdash.derive.status import (
    DEFAULT_STALL_AFTER,
    FINISHED,
    execution_status,
    iteration_added_value,
    log_appended_value,
    story_value,
)
from loopdash.loop.filecache import Parsed
from loopdash.loop.gitrepo import Commit
from loopdash.loop.project import Project, ProjectSnapshot
from loopdash.metrics.meter import NULL_METER, Meter
from loopdash.server.gitlive import GitLive
from loopdash.server.live import LiveProject

#: How long an inotify wake-up waits before polling, so one burst of writes
#: (truncate, write, close) costs one poll.
WAKE_DELAY = 0.002
#: The least time between two polls woken by inotify: a writer flushing a
#: file it keeps open sends IN_MODIFY per write, and a stream of them must
#: cost a poll per this many seconds, not one per write.
WAKE_SPACING = 0.01
#: Seconds between polls when polling is how changes are found: no inotify, or
#: a directory that matters is not watched.
POLL_INTERVAL = 1.0
#: Seconds between polls while inotify watches every directory that matters.
#: The poll is then a safety net and the clock that notices a run going quiet
#: (minutes), so an idle daemon need not wake every second.
WATCHED_POLL_INTERVAL = 10.0


class EventSink(Protocol):
    """Where a watcher publishes: the hub, or one project's channel onto it."""

    def publish(self, kind: str, data: object, gap: bool = False) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def observe(
    snapshot: ProjectSnapshot, now: float, stale_after: float, stall_after: float = DEFAULT_STALL_AFTER
) -> Observation:
    metrics = snapshot.metrics.value
    prd = snapshot.prd.value
    status = execution_status(snapshot, now, stale_after, stall_after)
    return Observation(
        status=status,
        stories=prd.stories if prd is not None else (),
        run_ids=snapshot.run_ids,
        current_run=snapshot.current_run,
        # A summary, or (every story passing, quiet) the state says so.
        current_finished=snapshot.summary.mtime is not None or status.get("state") == FINISHED,
        iterations=metrics.iterations if metrics is not None else (),
        log=snapshot.log,
        story_ids=prd.ids if prd is not None else (),
        story_hashes=prd.story_hashes if prd is not None else (),
    )


class ParseThread:
    """Large files' parses, one at a time, in a worker thread of their own (a filecache Handoff).

    A 23 MB plan parses in seconds; in the reactor thread that is seconds
    without an answer to anyone. One thread: parses queue behind each other,
    so at most one large file's bytes and objects are being built at a time.
    ``landed`` is called in the reactor thread after each outcome is handed back.
    """

    log = Logger(namespace="loopdash.server.watcher")

    def __init__(self, reactor: Any, landed: Callable[[], None]) -> None:
        self.reactor = reactor
        self.landed = landed
        self.pool = ThreadPool(minthreads=0, maxthreads=1, name="loopdash-parse")
        #: Jobs handed off so far (for tests and metrics).
        self.jobs = 0

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop()  # waits for a parse under way: at most one

    def __call__(self, job: Callable[[], Parsed[Any]], land: Callable[[Parsed[Any]], None]) -> None:
        self.jobs += 1

        def landing(outcome: Parsed[Any]) -> None:
            land(outcome)
            self.landed()

        def failed(failure: Failure) -> None:
            self.log.failure("A parse in the worker thread failed", failure)

        deferToThreadPool(self.reactor, self.pool, without_full_collections, job).addCallback(
            landing
        ).addErrback(failed)


#: The third collection threshold while a large file is parsed: no full collection.
FULL_COLLECTION_HELD = 1 << 30


def without_full_collections(job: Callable[[], Parsed[Any]]) -> Parsed[Any]:
    """``job()`` with no full garbage collection set off while it runs (young ones go on).

    A 23 MB plan is a million containers while it is built: each full
    collection set off meanwhile walked all of them, 150 to 400 ms holding the
    GIL in whichever thread it ran, so the reactor stood still though the
    parse was elsewhere. Young collections (what the reactor makes meanwhile)
    still run; the one full collection due after walks the plan once. The
    threshold is the process's (there is no other), put back as it was by
    the parse that raised it: with several projects, parses in their threads
    overlap, and one that found it raised already must not put back the raised
    value when it ends (full collections would be off for good).
    """
    young, middle, old = gc.get_threshold()
    owner = old != FULL_COLLECTION_HELD
    if owner:
        gc.set_threshold(young, middle, FULL_COLLECTION_HELD)
    try:
        return job()
    finally:
        if owner:
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, old)


class SharedNotifier(Service):
    """One inotify instance for every project of a daemon, handed out as views.

    A user has 128 inotify instances on a stock Linux: a daemon of a hundred
    projects with one each would take nearly all of them (and its watchers fall
    back to polling every second when they run out). Twisted's notifier stops
    for good when any watched folder is deleted; this one only drops that watch,
    so one project's deleted run folder leaves the others' watches alone. Each
    watcher gets a :class:`NotifierView` that behaves as its own notifier.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self._notifier: Any = None

    def view(self) -> NotifierView:
        """A notifier for one watcher; raises as INotify does when inotify cannot start."""
        if self._notifier is None:
            from twisted.internet import inotify

            class Lasting(inotify.INotify):
                def loseConnection(self) -> None:
                    pass  # Twisted calls it when any watched folder is deleted: keep the others' watches

                def close(self) -> None:
                    inotify.INotify.loseConnection(self)

            make: Any = Lasting
            notifier = make(self.reactor)
            notifier.startReading()
            self._notifier = notifier
        return NotifierView(self._notifier)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None


class NotifierView:
    """One watcher's share of a :class:`SharedNotifier`: its watches, dropped together."""

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier
        self.paths: set[str] = set()
        self.disconnected = False
        self.disconnecting = False

    def startReading(self) -> None:
        """The shared notifier reads already."""

    def watch(self, path: FilePath[Any], mask: int, callbacks: list[Callable[..., None]]) -> None:
        if self.disconnected:
            raise RuntimeError("this notifier view was closed")
        self.notifier.watch(path, mask=mask, callbacks=callbacks)
        self.paths.add(os.fsdecode(path.path))

    def ignore(self, path: FilePath[Any]) -> None:
        self.paths.discard(os.fsdecode(path.path))
        self.notifier.ignore(path)

    def loseConnection(self) -> None:
        """Drop every watch of this view (a watch removed with its folder is gone already)."""
        for path in list(self.paths):
            try:
                self.notifier.ignore(FilePath(path))
            except Exception:
                pass
        self.paths.clear()
        self.disconnected = True


class Watcher(Service):
    """Polls (and, where it can, listens to inotify for) changes; publishes events."""

    log = Logger(namespace="loopdash.server.watcher")

    def __init__(
        self,
        project: Project,
        hub: EventSink,
        clock: Any,
        stale_after: float,
        interval: float | None = None,
        use_inotify: bool = True,
        live: LiveProject | None = None,
        meter: Meter = NULL_METER,
        watched_interval: float = WATCHED_POLL_INTERVAL,
        ended_interval: float | None = None,
        notifiers: SharedNotifier | None = None,
        git: GitLive | None = None,
        stall_after: float = DEFAULT_STALL_AFTER,
        threads: Any = None,
    ) -> None:
        """``threads``: a reactor with threads, to parse large files off the reactor (None: inline)."""
        self.project = project
        #: Where new versions of large files are parsed, when ``threads`` is given.
        self.parses = None if threads is None else ParseThread(threads, self._parsed)
        self.stall_after = stall_after
        #: The project's git repository: refreshed on each poll and when HEAD or a ref changes.
        self.git = git
        if git is not None:
            git.on_refreshed = self._git_refreshed
        #: The snapshots requests share: a poll refreshes them, inotify invalidates them.
        self.live = live or LiveProject(project, clock, stale_after, stall_after=stall_after)
        self.meter = meter
        self.hub = hub
        self.clock = clock
        self.stale_after = stale_after
        #: A fixed polling period, or None: POLL_INTERVAL, or the watched interval
        #: while inotify sees every directory that matters.
        self.interval = interval
        self.watched_interval = watched_interval
        #: Seconds between safety polls while inotify watches everything and no run is
        #: live (nothing the clock alone can change): a daemon of a hundred projects,
        #: most of them at rest, should not wake ten times a second. None: as while live.
        self.ended_interval = ended_interval
        #: The daemon's one inotify instance, shared with the other projects' watchers
        #: (None: an inotify instance of this watcher's own).
        self.notifiers = notifiers
        self.use_inotify = use_inotify
        self.last: Observation | None = None
        #: The shared snapshot's version at the last poll: unchanged means no file changed.
        self._observed_version = -1
        self.polls = 0
        #: Whether the project root was missing at the last poll (said once, not every poll).
        self.root_missing = False
        self._loop: LoopingCall | None = None
        self._notifier: Any = None
        #: Watched directories, with the (device, inode) each watch is on.
        self._watched: dict[str, tuple[int, int]] = {}
        #: Why a directory could not be watched, as last logged: each cause is said once.
        self._cannot_watch: dict[str, str] = {}
        #: Whether inotify watched every directory that matters at the last poll.
        self.watching_all = False
        self.inotify_restarts = 0
        #: inotify could not be started: polling only, without retrying.
        self.inotify_unavailable = False
        self._wake_pending: Any = None
        #: When the last poll woken by inotify ran (clock seconds).
        self._last_wake_poll = float("-inf")
        #: Called after each poll with the changes published (for metrics and tests).
        self.on_poll: Callable[[list[Change]], None] = lambda changes: None
        #: Told of every observation, the first (the baseline) included, after its
        #: changes are published: the notification rules run here.
        self.observers: list[Callable[[Observation], object]] = []
        # A cold or large append is indexed in steps: look again once it is whole,
        # not at the next safety poll (10 s away while inotify watches).
        self.live.on_log_indexed = self._wake

    def startService(self) -> None:
        Service.startService(self)
        if self.parses is not None:
            self.parses.start()
            self.project.hand_off_large_parses(self.parses)
        if self.use_inotify:
            self._start_inotify()
            # Watches first, then the first look: whatever is written after the look
            # began is heard, so the look need not be taken again once the watches
            # are set (a daemon of a hundred projects looked twice at each before
            # it answered).
            self._keep_watching(look_again=False)
        self.poll()  # the first observation, which also sets the period
        loop = LoopingCall(self.poll)
        loop.clock = self.clock
        loop.start(self.period(), now=False).addErrback(lambda f: self.log.failure("The watcher stopped", f))
        self._loop = loop
        # Started in the same instant as the poll, the keepalive (every 30 s) falls
        # on every third safety poll (every 10 s): one wake-up for both.
        self.hub.start()

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._wake_pending is not None and self._wake_pending.active():
            self._wake_pending.cancel()
        self._stop_inotify()
        self.hub.stop()
        if self.parses is not None:
            self.project.hand_off_large_parses(None)
            self.parses.stop()

    def _parsed(self) -> None:
        """A large file's new reading landed: the next snapshot sees it, the next poll diffs it."""
        self.live.invalidate()
        self._wake()

    def period(self) -> float:
        """Seconds until the next poll."""
        if self.interval is not None:
            return self.interval
        if self.watching_all:
            if self.ended_interval is not None and self.last is not None:
                if not self.last.status.get("is_running"):
                    # No live run: only a file written (which inotify reports) can change the status.
                    return max(POLL_INTERVAL, self.ended_interval)
                due = self.next_threshold(self.last.status)
                if due is not None:
                    # A live run: between writes (which inotify reports) only the clock
                    # moves its state, and only when its quiet time passes a threshold.
                    # Wake for that moment, not every few seconds: a hundred live
                    # projects polled every 10 s cost a daemon at rest ~1 % of a core.
                    return max(POLL_INTERVAL, min(self.ended_interval, due))
            # Never so slow that a run going quiet (stalled, stopped) is noticed late.
            quiet = min(self.stale_after, self.stall_after)
            return max(POLL_INTERVAL, min(self.watched_interval, quiet / 4))
        return POLL_INTERVAL

    def next_threshold(self, status: Mapping[str, Any]) -> float | None:
        """Seconds until the live run of ``status`` goes stalled or stopped, if nothing is written.

        ``quiet_for`` is whole seconds, rounded down, so the true quiet time may be
        up to a second longer and the threshold passed up to a second before the
        answer: the poll then sees it (its rule compares the exact quiet time),
        at most a second late, as with polling every second. None when ``status``
        has no quiet time.
        """
        quiet = status.get("quiet_for")
        if not isinstance(quiet, int | float):
            return None
        # The rules (derive/status.py decide_liveness): stalled past stall_after, stopped past stale_after.
        ahead = [limit - quiet for limit in (self.stall_after, self.stale_after) if limit >= quiet]
        return max(min(ahead), 0.0) if ahead else None

    # -- polling -----------------------------------------------------------------

    def poll(self) -> None:
        """One observation; never raises (an exception would stop the LoopingCall)."""
        started = time.perf_counter()
        try:
            self._poll()
        except Exception:
            self.log.failure("Watcher poll failed; will try again")
        self.meter.poll_finished(time.perf_counter() - started)
        self._keep_period()

    def _keep_period(self) -> None:
        loop = self._loop
        if loop is None or not loop.running:
            return
        period = self.period()
        loop.interval = period  # read when the loop schedules its next call
        pending = loop.call  # None while the loop itself is calling
        if pending is not None and pending.active() and pending.getTime() > self.clock.seconds() + period:
            pending.reset(period)  # polling must speed up now, not after a slow period

    def _poll(self) -> None:
        self.polls += 1
        self._check_root()
        snapshot = self.live.snapshot(force=True)
        now = self.clock.seconds()
        previous = self.last
        unchanged = previous is not None and self.live.version == self._observed_version
        self._observed_version = self.live.version
        changes: list[Change]
        if unchanged:
            assert previous is not None
            # No file changed since the last poll: only the clock can move the
            # status (a run going stale), so skip the full observation and diff.
            status = execution_status(snapshot, now, self.stale_after, self.stall_after)
            self.last = replace(
                previous,
                status=status,
                current_finished=previous.current_finished or status.get("state") == FINISHED,
            )
            changes = status_changes(previous, self.last)
        else:
            observed = observe(snapshot, now, self.stale_after, self.stall_after)
            if previous is not None and previous.log.complete and not observed.log.complete:
                # progress.txt is being indexed in steps (an append of megabytes):
                # the baseline stays the last complete index, so that what is new
                # is announced once the index is whole, never skipped.
                observed = replace(observed, log=previous.log)
            self.last = observed
            changes = [] if previous is None else diff(previous, observed)
        self.watching_all = self._keep_watching()
        if self.git is not None:
            self.git.refresh()  # in its thread; announces new commits when it is done
        if previous is None:
            self._tell_observers()
            return  # the first observation is the baseline, not a change
        # A reset stands for many events not sent: the status that ends the poll
        # says so (gap), and is the observation's, not derived again.
        gap = any(isinstance(change, RESETS) for change in changes)
        for change in changes:
            if not (gap and isinstance(change, StatusChanged)):
                self._publish(change)
        if gap:
            self.hub.publish("status_update", self.live.with_git(dict(self.last.status)), gap=True)
        self.on_poll(changes)
        self._tell_observers()

    def _tell_observers(self) -> None:
        if self.last is None:
            return
        for observer in self.observers:
            try:
                observer(self.last)
            except Exception:
                self.log.failure("An observer of the watcher failed")

    def _check_root(self) -> None:
        missing = not os.path.isdir(self.project.root)
        if missing and not self.root_missing:
            self.log.warn(
                "The project root {root} is gone; serving an empty project until it is back",
                root=self.project.root,
            )
        elif self.root_missing and not missing:
            self.log.info("The project root {root} is back", root=self.project.root)
        self.root_missing = missing

    def _publish(self, change: Change) -> None:
        if isinstance(change, RunStarted):
            self.hub.publish("run_started", self.live.row_json(change.run_id))
        elif isinstance(change, RunFinished):
            self.hub.publish("run_finished", self.live.row_json(change.run_id))
        elif isinstance(change, (RunStalled, RunResumed, RunStopped)):
            kind = {RunStalled: "run_stalled", RunResumed: "run_resumed", RunStopped: "run_stopped"}[
                type(change)
            ]
            data = self.live.row_json(change.run_id)
            assert self.last is not None
            # The same state, quiet time and last activity as the status this poll saw.
            for name in ("state", "quiet_for", "last_activity"):
                data[name] = self.last.status.get(name)
            self.hub.publish(kind, data)
        elif isinstance(change, LogRewritten):
            self.hub.publish("log_reset", {"total": change.total})
        elif isinstance(change, IterationAdded):
            self.hub.publish("iteration_added", iteration_added_value(change.iteration, change.run_id))
        elif isinstance(change, StoryUpdated):
            commits = self.live.story_commits().get(change.story.id, ())
            self.hub.publish("story_updated", story_value(change.story, commits))
        elif isinstance(change, LogAppended) and self.last is not None:
            # At most MAX_ITEM_EVENTS entries per poll, each cut at the cap; the
            # rest stay new for the next poll, which comes at once.
            observed = self.last.log.total
            stop = min(observed, change.first + MAX_ITEM_EVENTS)
            entries = self.project.log.entries(change.first, stop, self.live.max_entry_bytes)
            for index, entry in enumerate(entries, start=change.first):
                self.hub.publish("log_appended", log_appended_value(entry, index))
            if stop < observed:
                self.last = replace(self.last, log=replace(self.last.log, total=stop))
                self._observed_version = -1  # files unchanged, but the diff is not done
                self._wake()
        elif isinstance(change, StatusChanged):
            self.hub.publish("status_update", self.live.with_git(dict(change.status)))
        elif isinstance(change, StoriesReset):
            self.hub.publish("stories_reset", copied(StoriesResetAnswer, change))
        elif isinstance(change, IterationsReset):
            self.hub.publish("iterations_reset", copied(IterationsResetAnswer, change))
        elif isinstance(change, LogReset):
            self.hub.publish("logs_reset", copied(LogsResetAnswer, change))

    def _git_refreshed(self, commits: tuple[Commit, ...], changed: bool) -> None:
        """After a git refresh: a ``commit_added`` per new commit (oldest first), then the status."""
        assert self.git is not None
        if changed:
            # New git watches (a repository created, a branch switched) and a new working tree.
            self.watching_all = self._keep_watching()
        for commit in commits:
            self.hub.publish("commit_added", self.git.commit_json(commit))
        if changed and self.last is not None:
            self.hub.publish("status_update", self.live.with_git(dict(self.last.status)))

    # -- inotify -------------------------------------------------------------------

    def _start_inotify(self) -> None:
        try:
            from twisted.internet import inotify

            notifier = inotify.INotify(self.clock) if self.notifiers is None else self.notifiers.view()
            notifier.startReading()
        except Exception as e:  # not Linux, or no inotify instances left
            self.log.info("inotify unavailable ({reason}); polling only", reason=str(e))
            self.inotify_unavailable = True
            return
        self._notifier = notifier

    def _stop_inotify(self) -> None:
        if self._notifier is not None and not self._notifier.disconnected:
            self._notifier.loseConnection()
        self._notifier = None
        self._watched.clear()

    def _wanted_directories(self) -> list[str]:
        """The directories whose changes matter: root, .claude-loop, runs/, the current run
        (the last poll's; before the first poll, the newest run directory on disk)."""
        wanted = [self.project.root, os.path.join(self.project.root, ".claude-loop"), self.project.runs_path]
        if self.last is not None:
            current = self.last.current_run
        else:
            current = next(reversed(self.project.run_ids()), None)
        if current is not None:
            wanted.append(os.path.join(self.project.runs_path, current))
        # A loop family that keeps its files below the root (scripts/ralph/, .ralph/PRD-N/).
        for path in self.project.source.paths():
            directory = os.path.dirname(path)
            if directory not in wanted and directory.startswith(self.project.root + os.sep):
                wanted.append(directory)
        if self.git is not None:
            wanted.extend(self.git.state.watch)
        return wanted

    def _keep_watching(self, look_again: bool = True) -> bool:
        """Keep inotify on the directories that matter; whether it sees all of them.

        ``look_again``: poll once more when a watch was added (files written into
        its directory before it began sent no event); not before the first poll,
        which reads after the watches are set.

        Twisted's notifier stops for good when any watched directory is deleted
        (it always asks for IN_DELETE_SELF, then disconnects), and a watch stays
        on a directory moved away. Either way this starts a fresh notifier.
        """
        if not self.use_inotify or self.inotify_unavailable:
            return False
        notifier = self._notifier
        if notifier is None or notifier.disconnected or notifier.disconnecting or self._a_watch_is_stale():
            if notifier is not None:
                self.log.info("A watched directory was deleted or replaced; restarting inotify")
                self.inotify_restarts += 1
            self._stop_inotify()
            self._start_inotify()
            if self._notifier is None:
                return False
        wanted = self._wanted_directories()
        for path in [path for path in self._watched if path not in wanted]:
            self._unwatch(path)  # an earlier run: polls still see it
        added = False
        for path in wanted:
            if path not in self._watched and os.path.isdir(path):
                added = self._watch(path) or added
        if added and look_again:
            # Files written into a directory before its watch began (a new run's
            # first metrics.json) have sent no event: look once more.
            self._wake()
        # The root must be watched: nothing else would tell us it came back.
        return all(
            path in self._watched for path in wanted if path == self.project.root or os.path.isdir(path)
        )

    def _a_watch_is_stale(self) -> bool:
        for path, identity in self._watched.items():
            try:
                st = os.stat(path)
            except OSError:
                return True
            if (st.st_dev, st.st_ino) != identity:
                return True
        return False

    def _watch(self, path: str) -> bool:
        """Watch ``path``; whether a new watch was set."""
        if path in self._watched or self._notifier is None:
            return False
        from twisted.internet import inotify

        mask = (
            # IN_MODIFY: a writer that keeps the file open (append, flush, no
            # close) sends no IN_CLOSE_WRITE; _wake coalesces the stream of them.
            inotify.IN_MODIFY
            | inotify.IN_CLOSE_WRITE
            | inotify.IN_MOVED_TO
            | inotify.IN_MOVED_FROM
            | inotify.IN_CREATE
            | inotify.IN_DELETE
            | inotify.IN_DELETE_SELF
            | inotify.IN_MOVE_SELF
        )
        try:
            st = os.stat(path)
            self._notifier.watch(FilePath(path), mask=mask, callbacks=[self._on_inotify])
        except Exception as e:
            # Tried again every poll (it may become readable): log the cause once, and again if it changes.
            reason = str(e)
            if self._cannot_watch.get(path) != reason:
                self._cannot_watch[path] = reason
                self.log.info("Cannot watch {path}: {reason}; polling it instead", path=path, reason=reason)
            return False
        if self._cannot_watch.pop(path, None) is not None:
            self.log.info("Watching {path} again", path=path)
        self._watched[path] = (st.st_dev, st.st_ino)
        return True

    def _unwatch(self, path: str) -> None:
        self._watched.pop(path, None)
        try:
            self._notifier.ignore(FilePath(path))
        except Exception:
            pass  # already gone with its directory

    def _note_run_directory(self, filepath: FilePath[Any], mask: int) -> None:
        from twisted.internet import inotify

        if mask & inotify.IN_Q_OVERFLOW:
            self.project.forget_run_list()
            return
        if not mask & inotify.IN_ISDIR:
            return
        path = os.fsdecode(filepath.path)
        if os.path.dirname(path) == self.project.runs_path:
            self.project.note_run_directory(os.path.basename(path))

    def _on_inotify(self, ignored: object, filepath: FilePath[Any], mask: int) -> None:
        # An exception here would disconnect the notifier for good: never raise.
        try:
            if self._git_event(filepath):
                return
            self._note_run_directory(filepath, mask)
            self.live.invalidate()
            self._wake()
        except Exception:
            self.log.failure("inotify wake-up failed")

    def _git_event(self, filepath: FilePath[Any]) -> bool:
        """Whether the event is in a git directory (HEAD, a ref, packed-refs: a git refresh now)."""
        git = self.git
        if git is None:
            return False
        path = os.fsdecode(filepath.path)
        state = git.state
        if os.path.dirname(path) not in state.watch or path in self._watched:
            return False
        if os.path.basename(path) in state.watch_names:
            git.refresh()
        return True  # objects, logs, locks: nothing to read

    def _wake(self) -> None:
        """Poll very soon: once for a burst of wake-ups, at most once per WAKE_SPACING."""
        if self._wake_pending is None or not self._wake_pending.active():
            now = self.clock.seconds()
            delay = max(WAKE_DELAY, self._last_wake_poll + WAKE_SPACING - now)
            # A clock stepped back must not put the next poll off by the size of the step.
            delay = min(delay, WAKE_SPACING)
            self._wake_pending = self.clock.callLater(delay, self._woken)

    def _woken(self) -> None:
        self._last_wake_poll = self.clock.seconds()
        self.poll()

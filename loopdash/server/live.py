"""The project as the daemon serves it: one shared snapshot, answers encoded once.

A request should cost what changed, not what the project holds. So requests do
not each stat the loop's files: they share the latest snapshot, taken again
when it is older than ``max_age`` (50 ms) or at once when the watcher says a
file changed (inotify). Each answer is encoded to bytes once per snapshot
version (and, for what moves with the clock, once per second) and the same
bytes serve every request until something changes. A cold progress.txt of
tens of megabytes is indexed in steps of a few megabytes, yielding to the
reactor in between, so the daemon keeps answering while it reads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from loopdash.contract.codec import plain_object
from loopdash.contract.shapes import ExecutionStatusAnswer
from loopdash.derive.future import FutureTimes
from loopdash.derive.status import (
    DEFAULT_STALL_AFTER,
    Liveness,
    execution_status,
    history_page_value,
    log_page_value,
    metrics_payload,
    older_run_liveness,
    run_detail_json,
    run_row_json,
    run_row_value,
    snapshot_liveness,
    status_value,
    stories_value,
)
from loopdash.loop.progress import MAX_ENTRY_BYTES
from loopdash.loop.project import Project, ProjectSnapshot, is_run_id
from loopdash.server.encoding import encode_json
from loopdash.server.gitlive import GitLive
from loopdash.server.runlist import RunListRows

#: How old a shared snapshot may be before a request takes a new one.
MAX_SNAPSHOT_AGE = 0.05
#: Bytes of a cold progress.txt indexed per step (about 3 ms of work: a dozen steps for 50 MB).
LOG_INDEX_STEP = 4 << 20
#: Bytes of encoded answers kept, across every endpoint and page.
MAX_CACHED_BYTES = 32 << 20
#: Kinds of answer kept per run, and how many runs' answers each kind keeps.
PER_RUN_SLOTS = ("metrics", "run")
MAX_RUN_SLOTS = 16
#: Runs whose file identities are remembered between requests.
MAX_RUN_CHECKS = 4096
#: Runs whose history rows are read per step the first time (about 10 ms of work).
ROW_WARM_STEP = 100


def history_page(run_ids: tuple[str, ...], offset: int, limit: int) -> tuple[str, ...]:
    """The ids of a history page: newest first, from ``offset`` (without copying the whole list)."""
    end = max(len(run_ids) - offset, 0)
    return run_ids[max(end - limit, 0) : end][::-1]


class LiveProject:
    """Shared snapshots and encoded answers over one :class:`Project`."""

    log = Logger(namespace="loopdash.server.live")

    def __init__(
        self,
        project: Project,
        clock: Any,
        stale_after: float,
        max_age: float = MAX_SNAPSHOT_AGE,
        log_step: int = LOG_INDEX_STEP,
        row_step: int = ROW_WARM_STEP,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        stall_after: float = DEFAULT_STALL_AFTER,
        git: GitLive | None = None,
    ) -> None:
        self.project = project
        #: The project's git repository, when the daemon reads it (working_tree, stories' commits).
        self.git = git
        #: Bytes of one log entry served or sent at most; longer ones are cut (``truncated``).
        self.max_entry_bytes = max_entry_bytes
        #: Called when a log indexed in steps is whole (the watcher looks again then).
        self.on_log_indexed: Callable[[], None] = lambda: None
        self.clock = clock
        self.stale_after = stale_after
        self.stall_after = stall_after
        #: File times ahead of the clock, counted from when they were first seen.
        self._future = FutureTimes()
        self.max_age = max_age
        self.log_step = log_step
        self.row_step = row_step
        #: Runs whose history row has been read once (later reads only stat).
        self._rows_read: set[str] = set()
        #: The run list every row of which has been read (compared by identity).
        self._rows_complete_for: tuple[str, ...] | None = None
        #: The full run list's rows (/api/runs), each row's JSON kept only in it.
        self._run_list = RunListRows()
        #: Bumped whenever a new snapshot differs from the last one.
        self.version = 0
        self._snapshot: ProjectSnapshot | None = None
        self._key: tuple[object, ...] | None = None
        self._taken = float("-inf")
        self._dirty = True
        #: One encoded answer per slot (endpoint and page), with the version it is valid for.
        self._bodies: OrderedDict[tuple[object, ...], tuple[tuple[object, ...], bytes]] = OrderedDict()
        self._cached_bytes = 0
        #: Per kind of per-run slot, its slots, oldest first (see _body).
        self._run_slots: dict[object, OrderedDict[tuple[object, ...], None]] = {}
        self._log_waiters: list[Deferred[None]] = []
        self._run_set: frozenset[str] = frozenset()
        self._run_set_of: tuple[str, ...] | None = None
        self._run_checks: dict[str, tuple[float, int, tuple[object, ...]]] = {}
        self._indexing: Any = None

    # -- snapshots -----------------------------------------------------------------

    def invalidate(self) -> None:
        """A file changed (the watcher heard it): the next request takes a new snapshot."""
        self._dirty = True

    def snapshot(self, force: bool = False) -> ProjectSnapshot:
        now = self.clock.seconds()
        current = self._snapshot
        if current is None or force or self._dirty or now - self._taken >= self.max_age:
            current, ahead = self._future.clamp(self.project.snapshot(log_budget=self.log_step), now)
            for name, seconds in ahead:
                self.log.warn(
                    "{name} has a modification time {seconds:.0f} s in the future; "
                    "counting it as written now, when it was first seen",
                    name=name,
                    seconds=seconds,
                )
            key = current.key()
            if key != self._key:
                self.version += 1
                self._key = key
            self._snapshot, self._taken, self._dirty = current, now, False
            if not current.log.complete:
                self._index_log_later()
        return current

    # -- the cold progress.txt index, in steps ------------------------------------------

    def _index_log_later(self) -> None:
        if self._indexing is None or not self._indexing.active():
            self._indexing = self.clock.callLater(0, self._index_log_step)

    def _index_log_step(self) -> None:
        self._indexing = None
        state = self.project.log.refresh(self.log_step)
        if not state.complete:
            self._index_log_later()
            return
        self.invalidate()
        self.on_log_indexed()
        waiters, self._log_waiters = self._log_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def log_ready(self) -> Deferred[None]:
        """Fires once progress.txt is fully indexed (at once, usually)."""
        if self.snapshot().log.complete:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._log_waiters.append(waiter)
        self._index_log_later()
        return waiter

    # -- history rows read for the first time, in steps --------------------------------

    def rows_ready(self, run_ids: Sequence[str] | None = None) -> Deferred[None]:
        """Fires once the history rows of ``run_ids`` (default: every run) have been read.

        At once, usually. The first full run list of a big project reads
        thousands of small files (about 0.6 s for 5,000 runs): that is done in
        steps of ``row_step`` runs that yield to the reactor, so streams and
        other requests are served meanwhile.
        """
        all_runs = self.snapshot().run_ids
        wanted = all_runs if run_ids is None else run_ids
        if wanted is self._rows_complete_for:
            return succeed(None)
        unread = [run_id for run_id in wanted if run_id not in self._rows_read]
        if not unread:
            if run_ids is None:
                self._rows_complete_for = all_runs
            # Without building `step` below: it refers to itself, a reference
            # cycle per request (its list and Deferred too) left to the cyclic
            # garbage collector, on every history page of a warm project.
            return succeed(None)
        done: Deferred[None] = Deferred()

        def step(start: int) -> None:
            for run_id in unread[start : start + self.row_step]:
                self.project.run_row(run_id)
                self._rows_read.add(run_id)
            if start + self.row_step < len(unread):
                self.clock.callLater(0, step, start + self.row_step)
            else:
                done.callback(None)

        step(0)  # a first step at once: a warm project, or a small one, answers without a turn
        return done

    # -- encoded answers -------------------------------------------------------------

    def _body(
        self,
        slot: tuple[object, ...],
        valid_for: tuple[object, ...],
        make: Callable[[], object],
        encoded: bool = False,
    ) -> bytes:
        """The slot's encoded answer if still valid for ``valid_for``, else a new one.

        A slot keeps only its latest answer, and all slots together at most
        MAX_CACHED_BYTES (least recently used go first), so memory stays flat
        however long the daemon runs and however many pages clients read. Slots
        of one run (``("metrics", run_id)``, ``("run", run_id)``) are at most
        MAX_RUN_SLOTS per kind: a slot per run ever asked for kept each finished
        run's answer until the 32 MB were full, a steady growth over days.
        """
        cached = self._bodies.get(slot)
        if cached is not None and cached[0] == valid_for:
            self._bodies.move_to_end(slot)
            return cached[1]
        made = make()
        body = made if encoded and isinstance(made, bytes) else encode_json(made)
        if cached is not None:
            self._cached_bytes -= len(cached[1])
        self._bodies[slot] = (valid_for, body)
        self._bodies.move_to_end(slot)
        self._cached_bytes += len(body)
        if slot[0] in PER_RUN_SLOTS:
            self._keep_run_slot(slot)
        while self._cached_bytes > MAX_CACHED_BYTES and len(self._bodies) > 1:
            _, (_, evicted) = self._bodies.popitem(last=False)
            self._cached_bytes -= len(evicted)
        return body

    def _keep_run_slot(self, slot: tuple[object, ...]) -> None:
        """Note ``slot`` as the newest of its kind; drop the kind's oldest past MAX_RUN_SLOTS."""
        slots = self._run_slots.setdefault(slot[0], OrderedDict())
        slots[slot] = None
        slots.move_to_end(slot)
        while len(slots) > MAX_RUN_SLOTS:
            oldest, _ = slots.popitem(last=False)
            dropped = self._bodies.pop(oldest, None)
            if dropped is not None:
                self._cached_bytes -= len(dropped[1])

    def with_git(self, status: dict[str, Any]) -> dict[str, Any]:
        """The status with the repository's ``working_tree`` added (when git is read)."""
        if self.git is not None:
            status["working_tree"] = plain_object(self.git.working_tree())
        return status

    def status(self) -> dict[str, Any]:
        return self.with_git(
            execution_status(self.snapshot(), self.clock.seconds(), self.stale_after, self.stall_after)
        )

    def liveness(self, run_id: str, now: float | None = None) -> Liveness:
        """A run's state: the current run's as the status says it, an older run's from its files."""
        snapshot = self.snapshot()
        moment = self.clock.seconds() if now is None else now
        if run_id == snapshot.current_run:
            return snapshot_liveness(snapshot, moment, self.stale_after, self.stall_after)
        metrics_mtime, summary_mtime = self.project.run_activity(run_id)
        return older_run_liveness(
            run_id,
            None if metrics_mtime is None else min(metrics_mtime, moment),
            None if summary_mtime is None else min(summary_mtime, moment),
            moment,
            self.stale_after,
            self.stall_after,
        )

    def _moment(self, now: float) -> tuple[int, str]:
        """What an answer that shows the current run's state is valid for at ``now``.

        The whole second (elapsed and quiet times move with it) and the current
        run's state: a run that goes stale within a second has its run_stopped
        published at once, and an answer kept for that second saying "running"
        would contradict the event the page re-reads it for.
        """
        snapshot = self.snapshot()
        return int(now), snapshot_liveness(snapshot, now, self.stale_after, self.stall_after).state

    def row_json(self, run_id: str) -> dict[str, Any]:
        """A run's history row with its state, as history, the run list and events give it."""
        return run_row_json(self.project.run_row(run_id), self.liveness(run_id))

    def _status_value(self, snapshot: ProjectSnapshot) -> ExecutionStatusAnswer:
        value = status_value(snapshot, self.clock.seconds(), self.stale_after, self.stall_after)
        return value if self.git is None else msgspec.structs.replace(value, tree=self.git.working_tree())

    def status_body(self) -> bytes:
        snapshot = self.snapshot()
        # Elapsed times and staleness move with the clock: recomputed once a second.
        moment = self._moment(self.clock.seconds())
        return self._body(
            ("status",),
            (self.version, moment, self.git.version if self.git is not None else None),
            lambda: self._status_value(snapshot),
        )

    def story_commits(self) -> dict[str, tuple[str, ...]]:
        """Each story id's commits (short shas, newest first), from the last git refresh."""
        return self.git.story_commits if self.git is not None else {}

    def stories_body(self) -> bytes:
        prd = self.snapshot().prd
        git_version = self.git.version if self.git is not None else None
        return self._body(
            ("stories",),
            (prd.identity, git_version),
            lambda: stories_value(prd.value, self.story_commits()),
        )

    def plan_ids(self) -> tuple[str, ...]:
        """The plan's story ids, in file order (what commit messages are matched against)."""
        prd = self.snapshot().prd.value
        return prd.ids if prd is not None else ()

    def logs_body(self, offset: int, limit: int) -> bytes:
        """A page of log entries; call after :meth:`log_ready` has fired."""
        state = self.snapshot().log
        log = self.project.log

        def page() -> object:
            entries = log.entries(offset, offset + limit, self.max_entry_bytes)
            return log_page_value(entries, state.total, limit, offset)

        # The generation moves when the file was rewritten: an old entry edited in
        # place at the same length keeps inode, size and total, not the text.
        valid_for = (state.inode, state.size, state.total, state.generation)
        return self._body(("logs", offset, limit), valid_for, page)

    def history_body(self, offset: int, limit: int) -> bytes:
        snapshot = self.snapshot()
        # Older runs' rows come from files that rarely change and have no watch
        # of their own: revalidated once a second, the current run's at once.
        moment = self._moment(self.clock.seconds())

        def page() -> object:
            ids = history_page(snapshot.run_ids, offset, limit)
            rows = [self.project.run_row(r) for r in ids]
            return history_page_value(
                rows, len(snapshot.run_ids), limit, offset, [self.liveness(r) for r in ids]
            )

        return self._body(("history", offset, limit), (self.version, moment), page)

    def history_runs(self, offset: int, limit: int) -> tuple[str, ...]:
        """The run ids of a history page, newest first."""
        return history_page(self.snapshot().run_ids, offset, limit)

    def runs_body(self) -> bytes:
        snapshot = self.snapshot()
        now = self.clock.seconds()

        def every_row() -> bytes:
            # An older run's row is copied from the last answer until it is due
            # for a check (every ROW_RECHECK s): for 5,000 runs that takes a few
            # ms, where encoding the 800 KB list anew took 40 and checking every
            # row (a stat each) 30.
            return self._run_list.body(
                snapshot.run_ids, snapshot.current_run, now, lambda run_id: self._encoded_row(run_id, now)
            )

        return self._body(("runs",), (self.version, self._moment(now)), every_row, encoded=True)

    def _encoded_row(self, run_id: str, now: float) -> bytes:
        """A run's row in the full run list, as JSON, read from its files now."""
        row = self.project.run_row(run_id)
        liveness = self.liveness(run_id, now)
        # quiet_for moves every second and is not in a row: only a new state re-encodes it.
        return encode_json(run_row_value(row, Liveness(liveness.state, None, liveness.last_activity)))

    def newest_run(self) -> str | None:
        return self.snapshot().current_run

    def metrics_body(self, run_id: str) -> bytes | None:
        """The run's metrics in the contract's shape, or None when it has none."""
        reading = self.project.metrics(run_id)
        metrics = reading.value
        if metrics is None:
            return None
        return self._body(("metrics", run_id), (reading.identity,), lambda: metrics_payload(metrics, run_id))

    def has_run(self, run_id: str) -> bool:
        """Whether ``run_id`` names a run, from the shared run list: no stat per request."""
        if not is_run_id(run_id):
            return False
        run_ids = self.snapshot().run_ids
        if run_ids is not self._run_set_of:
            self._run_set, self._run_set_of = frozenset(run_ids), run_ids
        return run_id in self._run_set

    def run_body(self, run_id: str) -> bytes:
        # A run's files are stat-ed at most once per max_age (or per snapshot
        # version: the current run's files are watched), not once per request.
        now = self.clock.seconds()
        checked = self._run_checks.get(run_id)
        if checked is not None and checked[1] == self.version and now - checked[0] < self.max_age:
            identity = checked[2]
        else:
            identity = self.project.run_files_identity(run_id)
            if len(self._run_checks) >= MAX_RUN_CHECKS:
                self._run_checks.clear()
            self._run_checks[run_id] = (now, self.version, identity)
        # The state and quiet time move with the clock: recomputed once a second.
        return self._body(
            ("run", run_id),
            (identity, self.version, self._moment(now)),
            lambda: run_detail_json(
                self.project.run_row(run_id), self.project.metrics(run_id).value, self.liveness(run_id, now)
            ),
        )

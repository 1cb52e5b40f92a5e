"""Notifications: the rules evaluated on each observation, kept, streamed and sent.

:class:`NotificationCenter` is told of every observation the watcher makes,
runs the pure rules of :mod:`loopdash.derive.notify`, and for each
notification: keeps it in a :class:`NotificationLog` (bounded in memory, and
appended to a small JSON-lines file so a restart keeps the history), publishes
a ``notification`` event on the stream, and hands it to a :class:`Sender`.
:class:`AppriseSender` delivers to any service Apprise supports, each target
in a thread of its own pool with a deadline, so a slow or failing target never
blocks the reactor; a target's failures are logged once until it works again.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from loopdash.derive.changes import Observation
from loopdash.derive.notify import (
    DEFAULT_STALL_AFTER,
    Notification,
    RuleConfig,
    RuleState,
    evaluate,
    facts_from,
)
from loopdash.derive.status import iso_utc

#: Notifications kept in memory and served by /api/notifications.
KEEP = 500
#: The history file is cut back to the newest KEEP lines when it passes this size.
FILE_LIMIT_BYTES = 1024 * 1024
#: Seconds a delivery may take before it counts as failed (the thread may go on;
#: Apprise's own connect and read timeouts end it).
SEND_TIMEOUT = 30.0
#: Deliveries waiting or running at once; beyond this, new ones are dropped (and logged).
MAX_PENDING_SENDS = 64
#: The largest page of ``/api/notifications``; larger limits are capped.
MAX_NOTIFICATION_PAGE = 500
#: Threads delivering at once.
SEND_THREADS = 4


class Clock(Protocol):
    def seconds(self) -> float: ...


class Publisher(Protocol):
    def publish(self, kind: str, data: object) -> None: ...


class Sender(Protocol):
    def send(self, notification: dict[str, Any]) -> None: ...


class NotificationLog:
    """The recent notifications, newest last, mirrored to a JSON-lines file.

    Each notification gets an ``id`` unique to this file (a counter, after the
    highest id found on disk). A file that cannot be read or written is logged
    once; the log then lives in memory only.
    """

    log = Logger(namespace="loopdash.server.notify")

    def __init__(self, path: str | None, keep: int = KEEP, file_limit: int = FILE_LIMIT_BYTES) -> None:
        self.path = path
        self.keep = keep
        self.file_limit = file_limit
        self._items: deque[dict[str, Any]] = deque(maxlen=keep)
        self._next_id = 1
        self._file_failed = False
        if path is not None:
            self._load(path)

    def _load(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                # Only the tail can hold the newest `keep`; never read an unbounded file.
                f.seek(max(size - self.file_limit, 0))
                raw = f.read(self.file_limit)
        except FileNotFoundError:
            return
        except OSError as e:
            self._fail(f"cannot read {path}: {e.strerror or e}")
            return
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a torn last line, or the cut-off first one
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                self._items.append(item)
                self._next_id = max(self._next_id, item["id"] + 1)

    def _fail(self, reason: str) -> None:
        if not self._file_failed:
            self.log.warn("Notification history not saved: {reason}", reason=reason)
        self._file_failed = True

    def add(self, notification: dict[str, Any]) -> dict[str, Any]:
        item = {"id": self._next_id, **notification}
        self._next_id += 1
        self._items.append(item)
        if self.path is not None:
            self._append(self.path, item)
        return item

    def _append(self, path: str, item: dict[str, Any]) -> None:
        line = (json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > self.file_limit:
                self._rewrite(path)
            self._file_failed = False
        except OSError as e:
            self._fail(f"cannot write {path}: {e.strerror or e}")

    def _rewrite(self, path: str) -> None:
        """Cut the file back to what memory holds, atomically."""
        temporary = f"{path}.{secrets.token_hex(4)}.tmp"
        with open(temporary, "wb") as f:
            for item in self._items:
                f.write((json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)

    def page(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Newest first: ``limit`` items after skipping ``offset``, and the total kept."""
        newest_first = list(reversed(self._items))
        return newest_first[offset : offset + limit], len(newest_first)


class NotificationCenter:
    """Runs the rules on each observation and delivers what they fire."""

    log = Logger(namespace="loopdash.server.notify")

    def __init__(
        self,
        config: RuleConfig,
        history: NotificationLog,
        hub: Publisher,
        clock: Clock,
        senders: Sequence[Sender] = (),
        project_name: Callable[[], str | None] = lambda: None,
        link: str | None = None,
        stall_after: float = DEFAULT_STALL_AFTER,
    ) -> None:
        self.config = config
        self.history = history
        self.hub = hub
        self.clock = clock
        self.senders = list(senders)
        self.project_name = project_name
        self.link = link
        self.stall_after = stall_after
        self.state = RuleState()

    def settings(self) -> dict[str, Any]:
        """What the rules are set to: the page shows the budget beside the cost."""
        return {
            "kinds": sorted(self.config.kinds),
            "budget_usd": self.config.budget_usd,
            "failure_streak": self.config.failure_streak,
            "stall_after": self.stall_after,
            "targets": len(self.senders),
        }

    def observe(self, observation: Observation) -> list[dict[str, Any]]:
        """Evaluate the rules on one observation; the notifications sent, as JSON."""
        now = self.clock.seconds()
        facts = facts_from(
            observation.status,
            observation.stories,
            observation.iterations,
            observation.current_finished,
            self.project_name(),
            now,
            self.stall_after,
        )
        self.state, fired = evaluate(self.state, facts, self.config, iso_utc(now) or "")
        return [self._deliver(notification) for notification in fired]

    def _deliver(self, notification: Notification) -> dict[str, Any]:
        data = notification.to_json()
        data["link"] = self.link
        item = self.history.add(data)
        self.hub.publish("notification", item)
        for sender in self.senders:
            try:
                sender.send(item)
            except Exception:
                self.log.failure("A notification sender failed")
        return item


def apprise_type(severity: str) -> str:
    """Apprise's notify type for a severity."""
    return {"success": "success", "warning": "warning", "failure": "failure"}.get(severity, "info")


def notification_body(item: dict[str, Any]) -> str:
    lines = [str(item.get("message", ""))]
    if item.get("link"):
        lines.append(str(item["link"]))
    return "\n".join(lines)


class AppriseSender(Service):
    """Delivers notifications through Apprise, one target at a time per thread.

    ``targets`` are Apprise URLs (``json://host/path``, ``slack://...``) or the
    paths of Apprise configuration files (text or YAML), each its own target
    so one failing service does not hide another. Sends run in a pool of
    :data:`SEND_THREADS` threads with a deadline of ``timeout`` seconds;
    beyond :data:`MAX_PENDING_SENDS` waiting sends, new ones are dropped.
    """

    log = Logger(namespace="loopdash.server.notify")

    def __init__(
        self,
        reactor: Any,
        urls: Sequence[str] = (),
        config_files: Sequence[str] = (),
        timeout: float = SEND_TIMEOUT,
        threads: int = SEND_THREADS,
        max_pending: int = MAX_PENDING_SENDS,
    ) -> None:
        import apprise  # only a daemon that notifies pays for the import

        # Apprise logs every failed send through the standard library; we log a
        # target's failures once, in the daemon's own log, so keep its words out.
        quiet = logging.getLogger("apprise")
        quiet.propagate = False
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())

        self.reactor = reactor
        self.timeout = timeout
        self.max_pending = max_pending
        self.pending = 0
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        #: Dropped since the backlog last cleared.
        self._dropped_now = 0
        #: Targets whose last send failed (their failures are logged once).
        self.failing: set[str] = set()
        self.targets: list[tuple[str, Any]] = []
        for url in urls:
            target = apprise.Apprise()
            if not target.add(url):
                raise ValueError(f"not a notification URL Apprise understands: {redact_url(url)}")
            self.targets.append((redact_url(url), target))
        for path in config_files:
            config = apprise.AppriseConfig()
            if not config.add(path):
                raise ValueError(f"cannot read the notification config {path}")
            target = apprise.Apprise()
            target.add(config)
            self.targets.append((path, target))
        self.pool = ThreadPool(minthreads=0, maxthreads=threads, name="loopdash-notify")

    def startService(self) -> None:
        Service.startService(self)
        self.pool.start()

    def stopService(self) -> None:
        Service.stopService(self)
        # Do not wait for a hung delivery: the threads are daemon-like workers of our own pool.
        self.pool.stop()

    def send(self, notification: dict[str, Any]) -> None:
        title = str(notification.get("title", "loopdash"))
        body = notification_body(notification)
        kind = apprise_type(str(notification.get("severity", "info")))
        for name, target in self.targets:
            if self.pending >= self.max_pending:
                self.dropped += 1
                self._dropped_now += 1
                if self._dropped_now == 1:  # said once per backlog, not once per notification
                    self.log.warn(
                        "Notifications dropped: {pending} deliveries already waiting (slow services?)",
                        pending=self.pending,
                    )
                continue
            self.pending += 1
            sending: Deferred[bool] = deferToThreadPool(
                self.reactor, self.pool, target.notify, body=body, title=title, notify_type=kind
            )
            sending.addTimeout(self.timeout, self.reactor)
            sending.addBoth(self._done, name)

    def _done(self, result: object, name: str) -> None:
        self.pending -= 1
        if self.pending == 0 and self._dropped_now:
            self.log.info("The notification backlog cleared; {count} were dropped", count=self._dropped_now)
            self._dropped_now = 0
        # Apprise answers a bool, or (2.x) an AppriseResult that is true on success.
        if not isinstance(result, Failure) and bool(result):
            self.sent += 1
            if name in self.failing:
                self.failing.discard(name)
                self.log.info("Notifications to {target} work again", target=name)
            return
        self.failed += 1
        if isinstance(result, Failure):
            reason = "timed out" if result.check(TimeoutError) else result.getErrorMessage()
        else:
            reason = "the service refused it or could not be reached"
        if name not in self.failing:
            self.failing.add(name)
            self.log.warn("Notification to {target} failed: {reason}", target=name, reason=reason)


def notify_config_problem(path: str) -> str | None:
    """Why the notification config at ``path`` cannot be used, or None.

    It holds secrets (webhook tokens, passwords), so, like the API token file,
    it must be a regular file that neither group nor others can read.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        return f"Cannot read the notification config {path}: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return f"The notification config {path} is not a regular file"
    if st.st_mode & 0o077:
        return (
            f"The notification config {path} is accessible to other users (mode {st.st_mode & 0o777:04o}); "
            f"it holds secrets: chmod 600 {path}"
        )
    return None


def redact_url(url: str) -> str:
    """The URL's scheme and host only, for logs: the rest may hold a secret."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<notification URL>"
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…"

"""Notifications: the rules evaluated on each observation, kept, streamed and sent.

:class:`NotificationCenter` is told of every observation the watcher makes,
runs the pure rules of :mod:`loopdash.derive.notify`, and for each
notification: keeps it in a :class:`NotificationLog` (bounded in memory, and
appended to a small JSON-lines file so a restart keeps the history), publishes
a ``notification`` event on the stream, and hands it to a :class:`Sender`.
:class:`AppriseSender` delivers to any service Apprise supports, each target
in a thread of its own with a deadline, so a slow or failing target never
blocks the reactor; a burst of notifications leaves as one message per target
(a hundred failed iterations are one send, not a hundred threads' worth of
work competing with the reactor for the interpreter); a target's failures are
logged once until it works again.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import stat
import threading
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

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
#: Kinds of notification one target's next message folds (there are eight kinds).
MAX_WAITING_KINDS = 16
#: The largest page of ``/api/notifications``; larger limits are capped.
MAX_NOTIFICATION_PAGE = 500


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

    Each kept notification is held as its JSON (compact UTF-8 bytes, the line
    the file has), which is what ``/api/notifications`` serves: about 350
    bytes each where the dict with its strings took about 1 KB, and a full
    history of ``keep`` (500) fills over hours of a busy loop.
    """

    log = Logger(namespace="loopdash.server.notify")

    def __init__(self, path: str | None, keep: int = KEEP, file_limit: int = FILE_LIMIT_BYTES) -> None:
        self.path = path
        self.keep = keep
        self.file_limit = file_limit
        self._items: deque[bytes] = deque(maxlen=keep)
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
                self._items.append(_line(item))
                self._next_id = max(self._next_id, item["id"] + 1)

    def _fail(self, reason: str) -> None:
        if not self._file_failed:
            self.log.warn("Notification history not saved: {reason}", reason=reason)
        self._file_failed = True

    def add(self, notification: dict[str, Any]) -> dict[str, Any]:
        return self.add_all([notification])[0]

    def add_all(self, notifications: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keep ``notifications`` (in order); each comes back with its ``id``.

        They reach the file in one write: a burst of a hundred notifications
        is one system call on the reactor, not a hundred opens and writes.
        """
        items = []
        lines = []
        for notification in notifications:
            item = {"id": self._next_id, **notification}
            self._next_id += 1
            line = _line(item)
            self._items.append(line)
            items.append(item)
            lines.append(line)
        if self.path is not None and items:
            self._append(self.path, lines)
        return items

    def _append(self, path: str, encoded: Sequence[bytes]) -> None:
        lines = b"".join(line + b"\n" for line in encoded)
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:  # the first write, or the directory was removed
                os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, lines)
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
            f.write(b"".join(line + b"\n" for line in self._items))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)

    def page(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Newest first: ``limit`` items after skipping ``offset``, and the total kept."""
        lines, total = self.page_json(offset, limit)
        return [json.loads(line) for line in lines], total

    def page_json(self, offset: int, limit: int) -> tuple[list[bytes], int]:
        """As :meth:`page`, each item as its JSON (an object), without decoding it."""
        return list(islice(reversed(self._items), offset, offset + limit)), len(self._items)


def _line(item: dict[str, Any]) -> bytes:
    """A notification as kept, written and served: compact JSON, UTF-8."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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
        return self._deliver(fired) if fired else []

    def _deliver(self, fired: Sequence[Notification]) -> list[dict[str, Any]]:
        items = self.history.add_all(
            [{**notification.to_json(), "link": self.link} for notification in fired]
        )
        for item in items:
            self.hub.publish("notification", item)
            for sender in self.senders:
                try:
                    sender.send(item)
                except Exception:
                    self.log.failure("A notification sender failed")
        return items


#: The order of severities, least first: a coalesced message takes the worst of its parts.
SEVERITY_RANK = {"info": 0, "success": 1, "warning": 2, "failure": 3}


def apprise_type(severity: str) -> str:
    """Apprise's notify type for a severity."""
    return {"success": "success", "warning": "warning", "failure": "failure"}.get(severity, "info")


def notification_body(item: dict[str, Any]) -> str:
    lines = [str(item.get("message", ""))]
    if item.get("link"):
        lines.append(str(item["link"]))
    return "\n".join(lines)


class Burst:
    """The notifications waiting for one target, folded per kind.

    Per kind: how many fired and the latest of them, kinds in the order they
    first fired. Its size is bounded by the number of kinds however many
    notifications fire (at most ``max_kinds``; notifications of a kind beyond
    that are only counted, in ``overflow``).
    """

    def __init__(self, max_kinds: int = MAX_WAITING_KINDS) -> None:
        self.max_kinds = max(1, max_kinds)  # the first kind always has its line
        self.counts: dict[str, int] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.overflow = 0

    def __len__(self) -> int:
        """Notifications folded in, counted ones included."""
        return sum(self.counts.values()) + self.overflow

    def add(self, item: dict[str, Any]) -> None:
        kind = str(item.get("kind", ""))
        if kind not in self.counts and len(self.counts) >= self.max_kinds:
            self.overflow += 1
            return
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.latest[kind] = item


def digest(burst: Burst) -> tuple[str, str, str]:
    """``(title, body, severity)`` of one message saying everything in ``burst``.

    One notification is sent as it is. Several become one message: the title
    counts them; the body has a line per kind, the most severe first (a
    kind that fired more than once says how often, and its latest message),
    then the page's link. ``burst`` must not be empty.
    """
    items = list(burst.latest.values())
    if len(burst) == 1:
        only = items[0]
        return str(only.get("title", "loopdash")), notification_body(only), str(only.get("severity", "info"))
    worst = max(items, key=lambda item: SEVERITY_RANK.get(str(item.get("severity")), 0))
    kinds = sorted(
        burst.latest,
        key=lambda kind: -SEVERITY_RANK.get(str(burst.latest[kind].get("severity")), 0),
    )  # stable: kinds of one severity keep the order they first fired in
    lines = []
    for kind in kinds:
        count, latest = burst.counts[kind], burst.latest[kind]
        message = str(latest.get("message", ""))
        lines.append(message if count == 1 else f"{count}x {kind.replace('_', ' ')}; the latest: {message}")
    if burst.overflow:
        lines.append(f"{burst.overflow} more of other kinds.")
    link = next((item["link"] for item in reversed(items) if item.get("link")), None)
    if link:
        lines.append(str(link))
    project = next((item["project"] for item in items if item.get("project")), None)
    return (
        f"{project or 'loopdash'}: {len(burst)} notifications",
        "\n".join(lines),
        str(worst.get("severity")),
    )


class Target:
    """One Apprise target: its name for logs, its thread, and what waits for it.

    At most one delivery is in flight (``busy``) at a time; what fires
    meanwhile folds into ``waiting`` and leaves as the next message.
    """

    def __init__(self, name: str, apprise: Any) -> None:
        self.name = name
        self.apprise = apprise
        self.waiting = Burst()
        self.busy = False
        #: Fires the deadline of the delivery in flight; None when none is.
        self.deadline: IDelayedCall | None = None
        #: The delivery thread's work: (title, body, notify type), or None to stop.
        self.jobs: queue.SimpleQueue[tuple[str, str, str] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None


class AppriseSender(Service):
    """Delivers notifications through Apprise: one thread per target, bursts coalesced.

    ``targets`` are Apprise URLs (``json://host/path``, ``slack://...``) or the
    paths of Apprise configuration files (text or YAML), each its own target
    so one failing service does not hide another. Each target has one
    thread of its own (started with the service, never on a send) and at
    most one delivery in flight. What fires in one turn of the reactor, or
    while a delivery is in flight, leaves as one message (see
    :func:`digest`): a burst of a hundred failed iterations is one message,
    not a hundred sends. A delivery that takes longer than ``timeout``
    seconds counts as failed; its target stays busy until Apprise gives up
    (its own connect and read timeouts).
    """

    log = Logger(namespace="loopdash.server.notify")

    def __init__(
        self,
        reactor: Any,
        urls: Sequence[str] = (),
        config_files: Sequence[str] = (),
        timeout: float = SEND_TIMEOUT,
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
        #: Deliveries in flight plus targets with notifications waiting.
        self.pending = 0
        #: Messages delivered, and messages that failed (each may say several notifications).
        self.sent = 0
        self.failed = 0
        #: Notifications handed to send(), per target.
        self.notifications = 0
        #: Targets whose last send failed (their failures are logged once).
        self.failing: set[str] = set()
        self._flush_call: IDelayedCall | None = None
        # Apprise's defaults run each delivery in a shared pool of its own
        # threads, under a deadline (60 s): a second thread per send, and
        # threads started in bursts. Our thread per target is already off
        # the reactor and has its own deadline, so Apprise runs in it.
        asset = apprise.AppriseAsset(async_mode=False, service_timeout=0)
        self.targets: list[Target] = []
        for url in urls:
            target = apprise.Apprise(asset=asset)
            if not target.add(url):
                raise ValueError(f"not a notification URL Apprise understands: {redact_url(url)}")
            self.targets.append(Target(redact_url(url), target))
        for path in config_files:
            config = apprise.AppriseConfig(asset=asset)
            if not config.add(path):
                raise ValueError(f"cannot read the notification config {path}")
            target = apprise.Apprise(asset=asset)
            target.add(config)
            self.targets.append(Target(path, target))

    def startService(self) -> None:
        Service.startService(self)
        for target in self.targets:
            if target.thread is None:
                # Each start its own queue: a thread of a previous start ends on its own.
                target.jobs = queue.SimpleQueue()
                # A daemon thread: a delivery hung on a dead service never holds up the exit.
                target.thread = threading.Thread(
                    target=self._work, args=(target, target.jobs), name="loopdash-notify", daemon=True
                )
                target.thread.start()
        self._flush_all()  # what fired before the start

    def stopService(self) -> None:
        Service.stopService(self)
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        for target in self.targets:
            target.jobs.put(None)  # ends the thread after the delivery in flight, if any
            target.thread = None

    def send(self, notification: dict[str, Any]) -> None:
        """Fold ``notification`` into each target's next message; sent after this turn."""
        for target in self.targets:
            if not target.waiting and not target.busy:
                self.pending += 1
            target.waiting.add(notification)
            self.notifications += 1
        if self._flush_call is None or not self._flush_call.active():
            # Later in this turn of the reactor: the rest of a burst joins the message.
            self._flush_call = self.reactor.callLater(0, self._flush_all)

    def _flush_all(self) -> None:
        for target in self.targets:
            self._flush(target)

    def _flush(self, target: Target) -> None:
        if target.busy or not target.waiting or not self.running:
            return
        title, body, severity = digest(target.waiting)
        target.waiting = Burst()
        target.busy = True
        target.deadline = self.reactor.callLater(self.timeout, self._timed_out, target)
        target.jobs.put((title, body, apprise_type(severity)))

    def _work(self, target: Target, jobs: queue.SimpleQueue[tuple[str, str, str] | None]) -> None:
        """The target's thread: deliver each job, and tell the reactor how it went."""
        while (job := jobs.get()) is not None:
            title, body, kind = job
            outcome: bool | str
            try:
                # Apprise answers a bool, or (2.x) an AppriseResult that is true on success.
                outcome = bool(target.apprise.notify(body=body, title=title, notify_type=kind))
            except Exception as e:
                outcome = f"{type(e).__name__}: {e}"
            self.reactor.callFromThread(self._returned, target, outcome)

    def _timed_out(self, target: Target) -> None:
        target.deadline = None
        self._record(target, "timed out")

    def _returned(self, target: Target, outcome: bool | str) -> None:
        target.busy = False
        if target.deadline is not None:  # else it was counted when its deadline passed
            target.deadline.cancel()
            target.deadline = None
            self._record(target, outcome)
        if target.waiting:
            self._flush(target)
        else:
            self.pending -= 1

    def _record(self, target: Target, outcome: bool | str) -> None:
        name = target.name
        if outcome is True:
            self.sent += 1
            if name in self.failing:
                self.failing.discard(name)
                self.log.info("Notifications to {target} work again", target=name)
            return
        self.failed += 1
        reason = "the service refused it or could not be reached" if outcome is False else outcome
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

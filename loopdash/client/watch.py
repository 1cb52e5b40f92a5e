"""``loopdash watch``: follow a loop from the terminal, through the live stream.

On a terminal the view is redrawn in place (progress bar, current story,
elapsed time, cost, ETA, the last few log headlines); into a pipe or a file
it prints one line per event. ``--once`` prints the status and exits
(``--json`` for scripts). The view is pure: :func:`apply` folds stream items
into a :class:`View`, :func:`render_screen` and :func:`describe` turn it and
them into text; :class:`Watch` only wires them to the client and the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from loopdash.client.dashboard import (
    DashboardClient,
    DashboardError,
    Disconnected,
    Forbidden,
    Unauthorized,
    find_url,
    read_token,
)
from loopdash.client.events import (
    CommitAdded,
    Connected,
    Gap,
    IterationAdded,
    LogAppended,
    LogReset,
    NotificationSent,
    Reconnected,
    RunFinished,
    RunResumed,
    RunStalled,
    RunStarted,
    RunStopped,
    StatusUpdate,
    StoryUpdated,
    StreamItem,
    UnknownEvent,
)
from loopdash.client.models import Commit, ExecutionStatus, LogEntry, WorkingTree
from loopdash.local.token import default_token_path, scan_token_path

#: Log headlines shown on the terminal view.
DEFAULT_HEADLINES = 5
BAR_WIDTH = 30
#: Seconds to gather a burst of events into one redraw.
REDRAW_DELAY = 0.05

HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
CLEAR_BELOW = "\x1b[J"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="the daemon's base URL (default: the one `loopdash start` recorded for --root, else http://127.0.0.1:8080)",
    )
    parser.add_argument("--root", default=".", help="the loop's project directory (default: the current one)")
    parser.add_argument(
        "--token-file", help="the API token file (default: <root>/.claude-loop/dashboard/auth_token.txt)"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every loop of a multi-project daemon as one live table (docs/projects.md)",
    )
    parser.add_argument("--once", action="store_true", help="print the current status and exit")
    parser.add_argument("--json", action="store_true", help="with --once: print the status as JSON")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for an answer (default 10)"
    )
    parser.add_argument(
        "--logs",
        type=int,
        default=DEFAULT_HEADLINES,
        metavar="N",
        help=f"log headlines on the terminal view (default {DEFAULT_HEADLINES})",
    )


# -- formatting ----------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """``2h05m07s``, ``4m05s``, ``12s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def roughly(seconds: float) -> str:
    """A quiet time as people say it: ``45 s``, ``7 min``, ``2 h``, ``3 d`` (rounded down)."""
    total = max(int(seconds), 0)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min"
    if total < 86400:
        return f"{total // 3600} h"
    return f"{total // 86400} d"


#: The states in which the loop may still be at work: its clocks move on between events.
TICKING_STATES = frozenset({"running", "stalled"})


def state_words(status: ExecutionStatus, moved: float = 0.0) -> str:
    """The run's state in plain words (docs/liveness.md): what the page's badge says."""
    state = status.state
    if state is None:  # a server from before issue 15
        return "running" if status.is_running else "not running"
    quiet = None if status.quiet_for is None else status.quiet_for + moved
    if state == "stalled":
        return f"stalled: no activity for {roughly(quiet or 0)}"
    if state == "stopped":
        return "stopped without finishing" + (f" {roughly(quiet)} ago" if quiet is not None else "")
    if state == "finished":
        return "finished"
    if state == "idle":
        return "idle: no run yet"
    return state


def money(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.3f}"


def progress_bar(percent: float, width: int = BAR_WIDTH) -> str:
    filled = round(max(0.0, min(percent, 100.0)) * width / 100.0)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def log_headline(entry: LogEntry) -> str:
    """One line for a progress.txt entry: its time, story and outcome."""
    story = outcome = None
    first = ""
    for line in entry.lines:
        text = line.replace("**", "").strip()
        lowered = text.lower()
        if lowered.startswith("story:") and story is None:
            story = text[len("story:") :].strip()
        elif lowered.startswith("status:") and outcome is None:
            outcome = text[len("status:") :].strip()
        elif text and not first:
            first = text.lstrip("-# ").strip()
    head = story or first or "(empty entry)"
    if story and outcome:
        head = f"{head} [{outcome}]"
    return f"{entry.timestamp}  {head}"


# -- the view: a pure fold over the stream ---------------------------------------------


@dataclass(frozen=True)
class View:
    """What the terminal shows, built from stream items."""

    url: str
    status: ExecutionStatus | None = None
    #: When ``status`` arrived (clock seconds): elapsed time moves on from there while running.
    status_at: float = 0.0
    #: Log entries by their index in /api/logs, the newest few.
    logs: Mapping[int, LogEntry] = field(default_factory=dict)
    #: None while connected; otherwise what is wrong ("connecting...", "reconnecting...").
    trouble: str | None = "connecting..."
    headlines: int = DEFAULT_HEADLINES
    #: The newest notification, as one line.
    notice: str | None = None
    #: The newest commit of the project's branch (from /api/commits, then commit_added).
    last_commit: Commit | None = None


def with_logs(view: View, entries: Mapping[int, LogEntry]) -> View:
    merged = {**view.logs, **entries}
    keep = sorted(merged)[-view.headlines :] if view.headlines > 0 else []
    return replace(view, logs={i: merged[i] for i in keep})


def apply(view: View, item: StreamItem | Disconnected, now: float) -> View:
    """The view after one stream item."""
    if isinstance(item, StatusUpdate):
        return replace(view, status=item.status, status_at=now, trouble=None)
    if isinstance(item, Connected):
        return replace(view, trouble=None)
    if isinstance(item, LogAppended):
        return with_logs(view, {item.index: item.entry})
    if isinstance(item, NotificationSent):
        return replace(view, notice=notification_line(item))
    if isinstance(item, LogReset):
        return replace(view, logs={})  # what was shown is void; the watch refetches the newest
    if isinstance(item, CommitAdded):
        return replace(view, last_commit=item.commit)
    if isinstance(item, Disconnected):
        return replace(view, trouble=f"reconnecting... ({away_reason(item.error)})")
    return view


#: Twisted's words for a connection the daemon dropped (it stopped or restarted).
_DROPPED = (
    "closed cleanly",
    "chunked decoder",
    "connectionlost",
    "connectiondone",
    "connection lost",
    "connection to the other side was lost",
    "responsenever",
    "responsefailed",
)


def away_reason(error: str) -> str:
    """Why the dashboard cannot be reached, in a few words a person can act on.

    The client's error text carries Twisted's internals ("Connection was closed
    cleanly; Chunked decoder in 'BODY' state..."); a terminal line has room
    for the gist only.
    """
    lowered = error.lower()
    if "refused" in lowered and "token" not in lowered:
        return "connection refused"
    if any(words in lowered for words in _DROPPED):
        return "the dashboard closed the connection (stopped or restarting?)"
    if "timed out" in lowered or "timeout" in lowered:
        return "no answer in time"
    if "dns" in lowered or "name or service not known" in lowered:
        return "unknown host"
    return error if len(error) <= 60 else error[:57] + "..."


#: SGR faint and back: figures from before the connection dropped are only the last known ones.
DIM, UNDIM = "\x1b[2m", "\x1b[22m"


def render_screen(view: View, now: float, width: int, dim: bool = False) -> list[str]:
    """The terminal view as lines, each cut to ``width``.

    While the dashboard is away, the figures are the last known ones: they stop
    moving, and with ``dim`` (a terminal) they are drawn faint.
    """
    status = view.status
    moved = 0.0
    if status is not None and status.run_state in TICKING_STATES and view.trouble is None:
        moved = max(now - view.status_at, 0.0)
    if view.trouble is not None:
        state = view.trouble
    elif status is None:
        state = "not running"
    else:
        state = state_words(status, moved)
    lines = [f"loopdash watch  {view.url}  {state}"]
    if status is None:
        lines.append("waiting for the first status...")
    else:
        lines.append(
            f"{progress_bar(status.progress_pct)} {status.progress_pct:5.1f}%  "
            f"{status.completed_stories}/{status.total_stories} stories"
        )
        story = status.current_story
        if story is None:
            lines.append("Story    -")
        else:
            title = f" {story.title}" if story.title else ""
            spent = story.elapsed_ms / 1000.0 + (moved if story.status == "in_progress" else 0.0)
            lines.append(f"Story    {story.id}{title} ({story.status.replace('_', ' ')}, {duration(spent)})")
        eta = None if status.estimated_remaining is None else max(status.estimated_remaining - moved, 0.0)
        lines.append(
            f"Elapsed  {duration(status.elapsed_time + moved)}   Cost {money(status.cost_so_far)}   "
            f"ETA {duration(eta)}"
        )
        quiet = ""
        if status.quiet_for is not None and status.state != "idle":
            quiet = f" (quiet for {roughly(status.quiet_for + moved)})"
        lines.append(f"Run      {status.run_id or '-'}   updated {status.last_update}{quiet}")
        tree = status.working_tree
        if tree is not None:
            lines.append(f"Git      {working_tree_text(tree)}")
    if view.last_commit is not None:
        lines.append(f"Commit   {commit_text(view.last_commit)}")
    if view.notice is not None:
        lines.append(f"Notice   {view.notice}")
    if view.headlines > 0:
        lines.append("Recent log:")
        if view.logs:
            lines.extend("  " + log_headline(view.logs[i]) for i in sorted(view.logs))
        else:
            lines.append("  (none yet)")
    lines.append("Ctrl-C to quit")
    cut = [line[: max(width - 1, 10)] for line in lines]
    if dim and view.trouble is not None and status is not None:
        cut = [cut[0]] + [f"{DIM}{line}{UNDIM}" for line in cut[1:-1]] + [cut[-1]]
    return cut


def commit_text(commit: Commit) -> str:
    """``abc1234 feat: US-001 ... (+12 -3, 2026-01-13T20:00:00Z)``."""
    return f"{commit.short_sha} {commit.subject} (+{commit.insertions} -{commit.deletions}, {commit.time})"


def working_tree_text(tree: WorkingTree) -> str:
    """The branch, its upstream and the uncommitted files; or why git is not read."""
    if tree.git.state not in ("ok", "rebase", "shallow", "empty"):
        return tree.git.reason or tree.git.state
    parts = [tree.branch or "detached HEAD"]
    if tree.upstream is not None:
        parts.append(f"{tree.ahead} ahead, {tree.behind} behind {tree.upstream}")
    if tree.changed_files is not None:
        parts.append("clean" if tree.changed_files == 0 else f"{tree.changed_files} uncommitted")
    if tree.git.state != "ok":
        parts.append(tree.git.reason or tree.git.state)
    return ", ".join(parts)


def status_line(status: ExecutionStatus) -> str:
    state = state_words(status)
    parts = [
        f"status {state} {status.progress_pct:.1f}% ({status.completed_stories}/{status.total_stories} stories)"
    ]
    story = status.current_story
    if story is not None:
        title = f" {story.title}" if story.title else ""
        parts.append(f"story {story.id}{title} {story.status.replace('_', ' ')}")
    parts.append(f"elapsed {duration(status.elapsed_time)}")
    parts.append(f"cost {money(status.cost_so_far)}")
    parts.append(f"ETA {duration(status.estimated_remaining)}")
    return ", ".join(parts)


def notification_line(item: NotificationSent) -> str:
    """``[stalled] demo: run stalled: No activity for 7 min ...`` for one notification."""
    note = item.notification
    when = note.time[11:16] if len(note.time) >= 16 else note.time
    return f"{when} [{note.kind.replace('_', ' ')}] {note.title}: {note.message}"


def describe(item: StreamItem | Disconnected) -> str:
    """One line for a stream item (the pipe output), without a time prefix."""
    if isinstance(item, Connected):
        return f"connected (server {item.server_version or '?'}, API {item.api_version or '?'})"
    if isinstance(item, StatusUpdate):
        return status_line(item.status)
    if isinstance(item, StoryUpdated):
        return f"story {item.story.id} {item.story.status}: {item.story.title}"
    if isinstance(item, IterationAdded):
        it = item.iteration
        return (
            f"iteration {it.story_id or '?'} {it.status} in {duration(it.elapsed_ms / 1000)}, "
            f"{money(it.cost)} (run {item.run_id or '?'})"
        )
    if isinstance(item, LogAppended):
        return f"log #{item.index} {log_headline(item.entry)}"
    if isinstance(item, RunStarted):
        return f"run {item.run.run_id} started"
    if isinstance(item, CommitAdded):
        return f"commit {commit_text(item.commit)}"
    if isinstance(item, RunFinished):
        run = item.run
        return (
            f"run {run.run_id} finished: {run.total_iterations} iterations "
            f"({run.success_count} ok, {run.failure_count} failed), {money(run.total_cost)}, "
            f"{duration(run.elapsed_time_s)}"
        )
    if isinstance(item, NotificationSent):
        return f"notification {notification_line(item)}"
    if isinstance(item, RunStalled):
        return f"run {item.run.run_id} stalled: no activity for {roughly(item.run.quiet_for or 0)}"
    if isinstance(item, RunResumed):
        return f"run {item.run.run_id} resumed"
    if isinstance(item, RunStopped):
        quiet = item.run.quiet_for
        ago = f", last activity {roughly(quiet)} ago" if quiet is not None else ""
        return f"run {item.run.run_id} stopped without finishing{ago}"
    if isinstance(item, LogReset):
        return f"log rewritten: {item.total} entries now"
    if isinstance(item, UnknownEvent):
        return f"event {item.type}"
    if isinstance(item, Disconnected):
        return f"disconnected: {away_reason(item.error)}; reconnecting in {item.retry_in:.1f} s..."
    if isinstance(item, Reconnected):
        return "reconnected" + (f" (resuming after {item.last_event_id})" if item.last_event_id else "")
    if isinstance(item, Gap):
        return f"gap: {item.reason}"
    raise TypeError(f"unexpected stream item {item!r}")


def timestamp_of(item: StreamItem | Disconnected, now: float) -> str:
    stamp = getattr(item, "timestamp", None)
    if isinstance(stamp, str) and stamp:
        return stamp
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- output ----------------------------------------------------------------------------


class Terminal:
    """Redraws a block of lines in place: up to its first line, clear below, write."""

    def __init__(self, out: TextIO, width: Callable[[], int]) -> None:
        self.out = out
        self.width = width
        self.drawn = 0

    def start(self) -> None:
        self.out.write(HIDE_CURSOR)

    def draw(self, lines: list[str]) -> None:
        up = f"\x1b[{self.drawn}A\r" if self.drawn else "\r"
        self.out.write(up + CLEAR_BELOW + "".join(line + "\n" for line in lines))
        self.out.flush()
        self.drawn = len(lines)

    def stop(self) -> None:
        self.out.write(SHOW_CURSOR)
        self.out.flush()


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


class Watch:
    """Follows the stream and keeps the output up to date (terminal or lines)."""

    def __init__(
        self,
        client: DashboardClient,
        out: TextIO,
        clock: Any,
        tty: bool,
        headlines: int,
        token_source: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.client = client
        self.out = out
        self.clock = clock
        self.tty = tty
        #: Re-reads the token, so a rotated token (``loopdash generate-token``) does not end the watch.
        self.token_source = token_source
        self.view = View(client.base_url, headlines=headlines)
        self.terminal = Terminal(out, terminal_width) if tty else None
        self.pending: IDelayedCall | None = None
        self.last_id: str | None = None

    async def follow(self) -> None:
        ticker: LoopingCall | None = None
        if self.terminal is not None:
            self.terminal.start()
            ticker = LoopingCall(self.redraw)
            ticker.clock = self.clock
            ticker.start(1.0, now=True)
        try:
            while True:
                try:
                    async for item in self.client.stream(last_event_id=self.last_id):
                        self.show(item)
                    return
                except (Unauthorized, Forbidden):
                    token = self.token_source()
                    if token is None or token == self.client.token:
                        raise
                    self.client.token = token
                    self.show(
                        Disconnected("the token was refused; using the new one from the token file", 1, 0.0)
                    )
        finally:
            if ticker is not None and ticker.running:
                ticker.stop()
            if self.pending is not None and self.pending.active():
                self.pending.cancel()
            if self.terminal is not None:
                self.terminal.stop()

    def show(self, item: StreamItem | Disconnected) -> None:
        now = self.clock.seconds()
        event_id = getattr(item, "id", None)
        if isinstance(event_id, str):
            self.last_id = event_id
        self.view = apply(self.view, item, now)
        if self.terminal is not None and isinstance(item, NotificationSent):
            self.out.write("\a")  # the terminal's bell: someone may be in another window
        if self.terminal is not None:
            if isinstance(item, (Connected, Gap, LogReset)):
                self.refresh_logs()
            self.redraw_soon()
        else:
            self.out.write(f"{timestamp_of(item, now)} {describe(item)}\n")
            self.out.flush()

    def redraw_soon(self) -> None:
        """Redraw once after a burst of events (a new run brings a dozen at once), not per event."""
        if self.pending is None or not self.pending.active():
            self.pending = self.clock.callLater(REDRAW_DELAY, self.redraw)

    def redraw(self) -> None:
        if self.pending is not None and self.pending.active():
            self.pending.cancel()
        self.pending = None
        if self.terminal is not None:
            self.terminal.draw(
                render_screen(self.view, self.clock.seconds(), self.terminal.width(), dim=True)
            )

    def refresh_logs(self) -> None:
        """Fetch the newest log entries and the last commit in the background (the stream only brings new ones)."""

        async def fetch() -> None:
            await self.fetch_last_commit()
            if self.view.headlines > 0:
                total = (await self.client.logs(limit=0)).total
                offset = max(total - self.view.headlines, 0)
                page = await self.client.logs(limit=self.view.headlines, offset=offset)
                self.view = with_logs(self.view, {offset + i: e for i, e in enumerate(page.logs)})
            self.redraw()

        # A failure here only leaves the headlines as they were; the stream reports the trouble.
        Deferred.fromCoroutine(fetch()).addErrback(lambda _: None)

    async def fetch_last_commit(self) -> None:
        newest = await last_commit(self.client)  # awaited first: the view may change meanwhile
        self.view = replace(self.view, last_commit=newest)


async def last_commit(client: DashboardClient) -> Commit | None:
    """The newest commit, or None (no repository, or a daemon without the git view)."""
    try:
        page = await client.commits(limit=1)
    except DashboardError:
        return None
    return page.commits[0] if page.commits else None


# -- the command -------------------------------------------------------------------------


def reread_token(path: str) -> str | None:
    try:
        return read_token(path)
    except DashboardError:
        return None


async def once(client: DashboardClient, out: TextIO, as_json: bool, clock: Any) -> None:
    status = await client.status()
    if as_json:
        out.write(json.dumps(status.to_json(), indent=2) + "\n")
    else:
        view = View(
            client.base_url,
            status=status,
            status_at=clock.seconds(),
            trouble=None,
            headlines=0,
            last_commit=await last_commit(client),
        )
        out.write("\n".join(render_screen(view, clock.seconds(), terminal_width())[:-1]) + "\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    if args.json and not args.once:
        print("loopdash watch: --json goes with --once", file=sys.stderr)
        return 2
    root = os.path.abspath(args.root)
    token_path = args.token_file or default_token_path(root)
    if args.all and not args.token_file and os.path.lexists(scan_token_path(root)):
        # A daemon started with --scan ROOT keeps its token there (docs/projects.md).
        token_path = scan_token_path(root)
    try:
        token = read_token(token_path)
    except DashboardError as e:
        if not args.token_file and not os.path.lexists(token_path):
            # Most likely not in a project (or its dashboard never started): say what to do.
            print(
                f"loopdash watch: no dashboard token at {token_path}: run this in the project directory, "
                "give --root DIR, or start the dashboard there with `loopdash start`",
                file=sys.stderr,
            )
        else:
            print(f"loopdash watch: {e.message}", file=sys.stderr)
        return 1
    client = DashboardClient(args.url or find_url(root), token, reactor=reactor, timeout=args.timeout)
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="replace")
    outcome: dict[str, int] = {}

    async def main() -> None:
        try:
            if args.all:
                from loopdash.client.fleet import FleetWatch, once_all

                if args.once:
                    await once_all(client, out, args.json, reactor)
                else:
                    fleet = FleetWatch(client, out, reactor, out.isatty(), lambda: reread_token(token_path))
                    await fleet.follow()
            elif args.once:
                await once(client, out, args.json, reactor)
            else:
                watch = Watch(
                    client, out, reactor, out.isatty(), max(args.logs, 0), lambda: reread_token(token_path)
                )
                await watch.follow()
            outcome["code"] = 0
        except DashboardError as e:
            print(f"loopdash watch: {e}", file=sys.stderr)
            outcome["code"] = 1
        except BrokenPipeError:
            # The reader went away (`| head`): nothing more to say, and nothing to flush at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            outcome["code"] = 0
        except CancelledError:
            outcome["code"] = 0  # Ctrl-C or SIGTERM: the reactor is shutting down
        finally:
            await client.close()

    def start() -> None:
        work = Deferred.fromCoroutine(main())
        stopping: list[bool] = []

        def on_shutdown() -> None:
            # Ctrl-C or SIGTERM stops the reactor: cancel first, so the stream
            # closes its connection and the terminal gets its cursor back.
            stopping.append(True)
            work.cancel()

        trigger = reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)

        def finished(result: object) -> None:
            if isinstance(result, Failure):
                # A bug, not a condition main() knows: say so rather than exit 0 in silence.
                result.printTraceback(file=sys.stderr)
                outcome["code"] = 70  # EX_SOFTWARE
            if not stopping:
                reactor.removeSystemEventTrigger(trigger)
                reactor.stop()

        work.addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    try:
        out.flush()
    except BrokenPipeError:
        pass
    return outcome.get("code", 0)

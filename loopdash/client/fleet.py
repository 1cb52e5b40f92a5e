"""``loopdash watch --all``: every loop of a multi-project daemon as one live table.

The table is ``GET /api/projects`` (remote machines' projects included), one
line per loop, the loops that need attention first, kept current by the
combined stream's ``project_added`` / ``project_updated`` / ``project_removed``
events (docs/projects.md). The view is pure: :func:`fold` applies a stream item
to a :class:`Fleet`, :func:`render_table` and :func:`fleet_line` turn it into
text; :class:`FleetWatch` wires them to the client and the clock, redrawing a
terminal at most :data:`MIN_REDRAW_INTERVAL` apart, or printing one line per
change into a pipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall

from loopdash.client.dashboard import DashboardClient, Disconnected, Forbidden, Unauthorized
from loopdash.client.events import (
    Connected,
    Gap,
    ProjectAdded,
    ProjectRemoved,
    ProjectUpdated,
    Reconnected,
    StreamItem,
)
from loopdash.client.models import ProjectRow
from loopdash.client.watch import Terminal, describe, money, roughly, terminal_width, timestamp_of

#: Seconds between two redraws at least: a burst of events over 100 projects is one redraw.
MIN_REDRAW_INTERVAL = 0.25
#: Where each state sorts: the loops that need a look first (docs/terminal.md).
ATTENTION = ("stalled", "failed", "stopped", "running", "finished", "idle")
BAR_WIDTH = 10


@dataclass(frozen=True)
class Fleet:
    """What the table shows: each project's last row, and the clock second it was received at."""

    url: str
    rows: Mapping[str, tuple[ProjectRow, float]] = field(default_factory=dict)
    #: Why the daemon is not being heard from (None: the stream is up).
    trouble: str | None = "connecting..."


def with_rows(fleet: Fleet, rows: Iterable[ProjectRow], now: float) -> Fleet:
    """The fleet with its rows replaced by ``rows`` (a fresh ``/api/projects``)."""
    return replace(fleet, rows={row.id: (row, now) for row in rows})


def fold(fleet: Fleet, item: StreamItem | Disconnected, now: float) -> Fleet:
    """The fleet after one stream item; the projects' own events change nothing here
    (a change of any field of a row comes as ``project_updated``)."""
    if isinstance(item, (ProjectAdded, ProjectUpdated)):
        return replace(fleet, rows={**fleet.rows, item.row.id: (item.row, now)}, trouble=None)
    if isinstance(item, ProjectRemoved):
        return replace(fleet, rows={k: v for k, v in fleet.rows.items() if k != item.project_id})
    if isinstance(item, Disconnected):
        return replace(fleet, trouble=f"reconnecting ({item.error})...")
    if isinstance(item, (Connected, Reconnected)):
        return replace(fleet, trouble=None)
    return fleet


def condition(row: ProjectRow) -> str:
    """The word the table's first column shows: the row's state, ``failed`` when its current
    run has failed iterations (and it is not stalled), ``unreachable`` for a remote that is down."""
    if not row.reachable:
        return "unreachable"
    state = row.state or ("running" if row.is_running else "idle")
    if state != "stalled" and row.failed_iterations > 0:
        return "failed"
    return state


def attention(row: ProjectRow) -> tuple[int, str, str]:
    """The sort key: :data:`ATTENTION` order (unknown states last), then name, then id."""
    word = condition(row)
    rank = ATTENTION.index(word) if word in ATTENTION else len(ATTENTION)
    return rank, row.name.lower(), row.id


def ordered(fleet: Fleet) -> list[tuple[ProjectRow, float]]:
    return sorted(fleet.rows.values(), key=lambda kept: attention(kept[0]))


def quiet_text(row: ProjectRow, received_at: float, now: float) -> str:
    """How long the loop has been quiet, moved on from the row's own ``quiet_for``."""
    if row.quiet_for is None:
        return "-"
    moving = row.reachable and row.state in ("running", "stalled")
    return roughly(row.quiet_for + (max(now - received_at, 0.0) if moving else 0.0))


def table_line(row: ProjectRow, received_at: float, now: float) -> list[str]:
    """The cells of one project's line."""
    filled = round(min(max(row.progress_pct, 0.0), 100.0) / 100 * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    name = f"{row.machine}: {row.name}" if row.machine else row.name
    story = row.current_story.id if row.current_story is not None else "-"
    return [
        condition(row),
        name,
        f"[{bar}] {row.progress_pct:5.1f}%",
        f"{row.completed_stories}/{row.total_stories}",
        story,
        money(row.cost_so_far),
        quiet_text(row, received_at, now),
    ]


HEADER = ["STATE", "PROJECT", "PROGRESS", "STORIES", "STORY", "COST", "QUIET"]


def render_table(fleet: Fleet, now: float, width: int) -> list[str]:
    """The screen: a title line, the header, one line per loop (attention first), cut to ``width``."""
    counts: dict[str, int] = {}
    for row, _ in fleet.rows.values():
        word = condition(row)
        counts[word] = counts.get(word, 0) + 1
    summary = " · ".join(f"{counts[w]} {w}" for w in (*ATTENTION, "unreachable") if w in counts)
    title = f"loopdash  {fleet.url}  {len(fleet.rows)} loops" + (f"  ({summary})" if summary else "")
    cells = [HEADER] + [table_line(row, at, now) for row, at in ordered(fleet)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = [title]
    for line in cells:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    if not fleet.rows:
        lines.append("(no loop found yet)")
    lines.append(fleet.trouble or "Ctrl-C to quit")
    return [line[:width] for line in lines]


def fleet_line(item: StreamItem | Disconnected) -> str | None:
    """One line for the pipe output, None for a project's own events (its row change follows)."""
    if isinstance(item, (ProjectAdded, ProjectUpdated)):
        row = item.row
        verb = "added" if isinstance(item, ProjectAdded) else "updated"
        return f"project {row.id} {verb}: {row_text(row)}"
    if isinstance(item, ProjectRemoved):
        return f"project {item.project_id} removed"
    if isinstance(item, (Connected, Disconnected, Reconnected, Gap)):
        return describe(item)
    return None


def row_text(row: ProjectRow) -> str:
    where = f" on {row.machine}" if row.machine else ""
    story = f", story {row.current_story.id}" if row.current_story is not None else ""
    return (
        f"{condition(row)}{where} {row.progress_pct:.1f}% "
        f"({row.completed_stories}/{row.total_stories} stories){story}, {money(row.cost_so_far)}"
    )


class FleetWatch:
    """Follows the combined stream and keeps the table (terminal) or the lines (pipe) current."""

    def __init__(
        self,
        client: DashboardClient,
        out: TextIO,
        clock: Any,
        tty: bool,
        token_source: Callable[[], str | None] = lambda: None,
        width: Callable[[], int] = terminal_width,
    ) -> None:
        self.client = client
        self.out = out
        self.clock = clock
        self.tty = tty
        self.token_source = token_source
        self.fleet = Fleet(client.base_url)
        self.terminal = Terminal(out, width) if tty else None
        self.pending: IDelayedCall | None = None
        self.last_drawn = float("-inf")
        self.last_id: str | None = None

    async def follow(self) -> None:
        ticker: LoopingCall | None = None
        if self.terminal is not None:
            self.terminal.start()
            # Quiet times move on between events.
            ticker = LoopingCall(self.redraw_soon)
            ticker.clock = self.clock
            ticker.start(1.0, now=True)
        try:
            while True:
                try:
                    async for item in self.client.stream(last_event_id=self.last_id):
                        await self.show(item)
                    return
                except (Unauthorized, Forbidden):
                    token = self.token_source()
                    if token is None or token == self.client.token:
                        raise
                    self.client.token = token
        finally:
            if ticker is not None and ticker.running:
                ticker.stop()
            if self.pending is not None and self.pending.active():
                self.pending.cancel()
            if self.terminal is not None:
                self.terminal.stop()

    async def show(self, item: StreamItem | Disconnected) -> None:
        now = self.clock.seconds()
        event_id = getattr(item, "id", None)
        if isinstance(event_id, str):
            self.last_id = event_id
        self.fleet = fold(self.fleet, item, now)
        if isinstance(item, (Connected, Gap)):
            # The stream brings changes only: the whole list at start and after a gap.
            listed = await self.client.projects()
            self.fleet = with_rows(self.fleet, listed.projects, self.clock.seconds())
            if self.terminal is None:
                self.print_line(item, now)
                for row, _ in ordered(self.fleet):
                    self.out.write(f"{timestamp_of(item, now)} project {row.id}: {row_text(row)}\n")
                self.out.flush()
                return
        if self.terminal is not None:
            self.redraw_soon()
        else:
            self.print_line(item, now)

    def print_line(self, item: StreamItem | Disconnected, now: float) -> None:
        line = fleet_line(item)
        if line is not None:
            self.out.write(f"{timestamp_of(item, now)} {line}\n")
            self.out.flush()

    def redraw_soon(self) -> None:
        """Redraw now if the last redraw is old enough, else once when it is."""
        if self.pending is not None and self.pending.active():
            return
        wait = self.last_drawn + MIN_REDRAW_INTERVAL - self.clock.seconds()
        if wait <= 0:
            self.redraw()
        else:
            self.pending = self.clock.callLater(wait, self.redraw)

    def redraw(self) -> None:
        self.pending = None
        if self.terminal is not None:
            now = self.clock.seconds()
            self.last_drawn = now
            self.terminal.draw(render_table(self.fleet, now, self.terminal.width()))


async def once_all(client: DashboardClient, out: TextIO, as_json: bool, clock: Any) -> None:
    """``--all --once``: the table once (``--json``: the ``/api/projects`` answer)."""
    listed = await client.projects()
    if as_json:
        out.write(json.dumps(listed.to_json(), indent=2) + "\n")
    else:
        now = clock.seconds()
        fleet = replace(with_rows(Fleet(client.base_url), listed.projects, now), trouble=None)
        out.write("\n".join(render_table(fleet, now, terminal_width())[:-1]) + "\n")
    out.flush()

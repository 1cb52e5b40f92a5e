"""Typed events of the live stream (``GET /api/stream``), and the client's own markers.

:func:`decode_event` turns one SSE message (its JSON ``data`` and its id) into
one of the frozen event classes below. Types the client does not know become
:class:`UnknownEvent`, so a newer server does not break an older client.
:class:`Reconnected` and :class:`Gap` are not sent by the server: the client
yields them so a consumer knows when events may have been missed.

On a multi-project daemon every event carries ``project`` (the id of the
project it is about), and the combined stream adds :class:`ProjectAdded`,
:class:`ProjectUpdated` and :class:`ProjectRemoved` (docs/projects.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopdash.client.models import (
    Commit,
    ExecutionStatus,
    Iteration,
    LogEntry,
    MalformedResponse,
    Notification,
    ProjectRow,
    RunRow,
    Story,
    decode,
)
from loopdash.contract.shapes import ConnectedData, StreamMessage


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """What every server event carries besides its data."""

    #: The SSE id (``<boot>-<seq>``), the one to resume from.
    id: str | None = None
    timestamp: str | None = None
    #: The server could not replay what this client missed: this event restarts the picture.
    gap: bool = False
    #: A multi-project daemon's events: the id of the project the event is about (None: a
    #: single-project daemon, which sends no such field).
    project: str | None = None
    #: Top-level fields of the event JSON beyond ``type``, ``data``, ``timestamp``, ``gap``.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Connected(StreamEvent):
    server_version: str | None
    api_version: str | None


@dataclass(frozen=True, kw_only=True)
class StatusUpdate(StreamEvent):
    status: ExecutionStatus


@dataclass(frozen=True, kw_only=True)
class StoryUpdated(StreamEvent):
    story: Story


@dataclass(frozen=True, kw_only=True)
class IterationAdded(StreamEvent):
    run_id: str | None
    iteration: Iteration


@dataclass(frozen=True, kw_only=True)
class LogAppended(StreamEvent):
    #: The entry's position in ``/api/logs``; the same index comes again when the entry grew.
    index: int
    entry: LogEntry


@dataclass(frozen=True, kw_only=True)
class RunStarted(StreamEvent):
    run: RunRow


@dataclass(frozen=True, kw_only=True)
class RunFinished(StreamEvent):
    run: RunRow


@dataclass(frozen=True, kw_only=True)
class RunStalled(StreamEvent):
    """The current run has had no activity for --stall-after (``run.quiet_for`` seconds)."""

    run: RunRow


@dataclass(frozen=True, kw_only=True)
class RunResumed(StreamEvent):
    """A stalled or stopped run shows activity again."""

    run: RunRow


@dataclass(frozen=True, kw_only=True)
class RunStopped(StreamEvent):
    """The run went quiet past --stale-after without finishing: the loop ended."""

    run: RunRow


@dataclass(frozen=True, kw_only=True)
class LogReset(StreamEvent):
    """progress.txt was rewritten, truncated or replaced: refetch it (it now has ``total`` entries)."""

    total: int


@dataclass(frozen=True, kw_only=True)
class NotificationSent(StreamEvent):
    """The daemon notified: a run finished, stalled or stopped, a failure, a budget passed."""

    notification: Notification


@dataclass(frozen=True, kw_only=True)
class CommitAdded(StreamEvent):
    """A new commit on the project's current branch."""

    commit: Commit


@dataclass(frozen=True, kw_only=True)
class ProjectAdded(StreamEvent):
    """A project is served now (discovered, or its remote daemon came back): its ``/api/projects`` row."""

    row: ProjectRow


@dataclass(frozen=True, kw_only=True)
class ProjectUpdated(StreamEvent):
    """A field of a project's ``/api/projects`` row changed: the whole row, as it is now."""

    row: ProjectRow


@dataclass(frozen=True, kw_only=True)
class ProjectRemoved(StreamEvent):
    """The project ``project_id`` is no longer served (its folder is gone, or holds no loop)."""

    project_id: str


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(StreamEvent):
    """An event type this client does not know; its data as sent."""

    type: str
    data: Any


@dataclass(frozen=True)
class Reconnected:
    """The stream was lost and is back, after ``attempts`` tries and ``delay`` seconds of waiting."""

    attempts: int
    delay: float
    #: The id sent as ``Last-Event-ID`` (None: the stream started over).
    last_event_id: str | None


@dataclass(frozen=True)
class Gap:
    """Events may have been missed; refetch what you show (the next status_update is complete)."""

    reason: str


ServerEvent = (
    Connected
    | StatusUpdate
    | StoryUpdated
    | IterationAdded
    | LogAppended
    | RunStarted
    | RunFinished
    | NotificationSent
    | RunStalled
    | RunResumed
    | RunStopped
    | LogReset
    | CommitAdded
    | ProjectAdded
    | ProjectUpdated
    | ProjectRemoved
    | UnknownEvent
)
StreamItem = ServerEvent | Reconnected | Gap


def decode_event(data: str, event_id: str | None) -> ServerEvent:
    """One server event from its SSE ``data`` (a JSON object) and id."""
    try:
        value = json.loads(data)
    except ValueError as e:
        raise MalformedResponse(f"stream event is not JSON: {e}") from None
    message = decode(StreamMessage, value, "event")
    kind, payload = message.type, message.data
    common: dict[str, Any] = {
        "id": event_id or None,
        "timestamp": message.timestamp,
        "gap": message.gap,
        "project": message.project,
        "extra": message.extra,
    }
    if kind == "connected":
        hello = decode(ConnectedData, payload if payload is not None else {}, "connected.data")
        return Connected(server_version=hello.server_version, api_version=hello.api_version, **common)
    if kind == "status_update":
        return StatusUpdate(status=decode(ExecutionStatus, payload, "status_update.data"), **common)
    if kind == "story_updated":
        return StoryUpdated(story=decode(Story, payload, "story_updated.data"), **common)
    if kind == "iteration_added":
        run_id, rest = _split(payload, "run_id", str | None, "iteration_added.data")
        return IterationAdded(
            run_id=run_id, iteration=decode(Iteration, rest, "iteration_added.data"), **common
        )
    if kind == "log_appended":
        index, rest = _split(payload, "index", int, "log_appended.data")
        return LogAppended(index=index, entry=decode(LogEntry, rest, "log_appended.data"), **common)
    if kind == "notification":
        return NotificationSent(notification=decode(Notification, payload, "notification.data"), **common)
    if kind == "run_started":
        return RunStarted(run=decode(RunRow, payload, "run_started.data"), **common)
    if kind == "run_finished":
        return RunFinished(run=decode(RunRow, payload, "run_finished.data"), **common)
    if kind == "run_stalled":
        return RunStalled(run=decode(RunRow, payload, "run_stalled.data"), **common)
    if kind == "run_resumed":
        return RunResumed(run=decode(RunRow, payload, "run_resumed.data"), **common)
    if kind == "run_stopped":
        return RunStopped(run=decode(RunRow, payload, "run_stopped.data"), **common)
    if kind == "log_reset":
        total, _ = _split(payload, "total", int, "log_reset.data")
        return LogReset(total=total, **common)
    if kind == "commit_added":
        return CommitAdded(commit=decode(Commit, payload, "commit_added.data"), **common)
    if kind in ("project_added", "project_updated"):
        row = decode(ProjectRow, payload, f"{kind}.data")
        return (ProjectAdded if kind == "project_added" else ProjectUpdated)(row=row, **common)
    if kind == "project_removed":
        ident, _ = _split(payload, "id", str, "project_removed.data")
        return ProjectRemoved(project_id=ident, **common)
    return UnknownEvent(type=kind, data=payload, **common)


def _split(payload: object, key: str, kind: Any, what: str) -> tuple[Any, dict[str, Any]]:
    """``payload[key]`` as ``kind``, and the rest of the object: an event that adds a field to a model."""
    if not isinstance(payload, dict):
        raise MalformedResponse(f"{what}: expected a JSON object, got {type(payload).__name__}")
    rest = dict(payload)
    value = rest.pop(key, None)
    return decode(kind, value, f"{what}.{key}"), rest

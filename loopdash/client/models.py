"""Typed, frozen values for what the dashboard API answers, as a client sees them.

They are the contract's own classes (:mod:`loopdash.contract.shapes`, the data
models of ``dashboard-api.md``), decoded and validated by msgspec. Each keeps
every field the contract does not name in ``extra``, so a newer server's
additions are not lost. A body that breaks the contract raises
:class:`MalformedResponse` through :func:`decode`; a class's own
``from_json`` raises :class:`~loopdash.contract.codec.ContractError`, which
MalformedResponse extends.
"""

from __future__ import annotations

from typing import Any, TypeVar

from loopdash.contract import codec
from loopdash.contract.codec import ContractError
from loopdash.contract.shapes import (
    Commit,
    CommitDetail,
    CommitFile,
    CommitPage,
    CurrentStory,
    ExecutionStatus,
    Health,
    HistoryPage,
    Iteration,
    LogEntry,
    LogPage,
    Metrics,
    Notification,
    NotificationPage,
    NotificationSettings,
    ProjectList,
    ProjectRow,
    ProjectStory,
    RunDetail,
    RunMetricsDetail,
    RunRow,
    RunTotals,
    Stories,
    Story,
    WorkingTree,
)

__all__ = [
    "Commit",
    "CommitDetail",
    "CommitFile",
    "CommitPage",
    "ContractError",
    "CurrentStory",
    "DashboardError",
    "ExecutionStatus",
    "Health",
    "HistoryPage",
    "Iteration",
    "JSONObject",
    "LogEntry",
    "LogPage",
    "MalformedResponse",
    "Metrics",
    "Notification",
    "NotificationPage",
    "NotificationSettings",
    "ProjectList",
    "ProjectRow",
    "ProjectStory",
    "RunDetail",
    "RunMetricsDetail",
    "RunRow",
    "RunTotals",
    "Stories",
    "Story",
    "WorkingTree",
    "decode",
    "runs_from_json",
]

T = TypeVar("T")
JSONObject = dict[str, Any]


class DashboardError(Exception):
    """Anything the dashboard client raises; ``message`` says what went wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedResponse(DashboardError, ContractError):
    """The server answered something that does not match the API contract."""


def decode(cls: type[T], value: object, what: str | None = None) -> T:
    """``value`` (decoded JSON) as ``cls``, validated.

    Raises :class:`MalformedResponse`, naming ``what`` (default: the class), when
    the value breaks the contract.
    """
    result: T = _decode(cls, value, what)
    return result


def _decode(cls: Any, value: object, what: str | None) -> Any:
    try:
        return codec.decode(value, cls)
    except ContractError as e:
        message = str(e) if what is None else f"{what}: {str(e).partition(': ')[2]}"
        raise MalformedResponse(message) from None


def runs_from_json(value: object) -> tuple[RunRow, ...]:
    """``GET /api/runs``: a bare array of run rows."""
    rows: tuple[RunRow, ...] = _decode(tuple[RunRow, ...], value, "runs")
    return rows

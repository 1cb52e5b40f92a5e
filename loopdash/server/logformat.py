"""The daemon's log observer: twistd's text lines, cheaper; or JSON lines for log shippers.

twistd picks its log observer after the plugin built the service, and takes an
``ILogObserver`` component of the application over its own text observer. A
plugin never sees the application, so :class:`DaemonLogging` sets that component
when twistd makes it the service's parent.

Why not leave text to twistd: its observer formats the timestamp with
``strftime`` for every event, and with one access-log event per request that
was the largest single cost of serving a small answer (about 9 µs of ~140 µs).
The lines here are the same, character for character; the timestamp, which has
one-second resolution, is formatted once per second.
"""

from __future__ import annotations

import math
import signal
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any

from twisted.application.service import IService, MultiService
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    eventAsJSON,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile

LOG_FORMATS = ("text", "json")


def twistd_log_target(twistd_options: Mapping[str, Any]) -> str | None:
    """The log file twistd would write (None: standard output), by twistd's own rules."""
    logfile = twistd_options.get("logfile")
    if logfile == "-" or (not logfile and twistd_options.get("nodaemon")):
        return None
    return str(logfile or "twistd.log")


def twistd_writes_a_file(twistd_options: Mapping[str, Any]) -> bool:
    """Whether twistd would log to a file or standard output, which our observer then replaces.

    Not with ``--syslog`` or ``--logger`` (the user chose another observer), nor
    for a daemon told to log to ``-`` (twistd refuses that itself).
    """
    if twistd_options.get("syslog") or twistd_options.get("logger"):
        return False
    return not (twistd_options.get("logfile") == "-" and not twistd_options.get("nodaemon"))


class PerSecondTimestamps:
    """``twisted.logger.formatTime`` for event times, formatted once per second.

    twistd's format ("%Y-%m-%dT%H:%M:%S%z") shows whole seconds, so every
    time within one second gives the same text (the UTC offset included: it is
    worked out for that second). A time within a microsecond of the next
    second is formatted as is, since datetime rounds it up into that second.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = ""

    def __call__(self, when: float | None) -> str:
        if when is None or not math.isfinite(when):
            return formatTime(when)
        second = math.floor(when)
        if when - second >= 0.999999:
            return formatTime(when)
        if second != self._second:
            self._text = formatTime(second)
            self._second = second
        return self._text


def system_of(event: LogEvent) -> str:
    """The ``[system]`` of a text line: log_system, else namespace#level (twisted.logger's rule)."""
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        return f"{event.get('log_namespace', '-')}#{'-' if level is None else level.name}"
    try:
        return str(system)
    except Exception:
        return "UNFORMATTABLE"


#: The format of events carrying their text ready-made in ``line`` (the access log's).
PREFORMATTED = "{line}"


def classic_text_formatter() -> Callable[[LogEvent], str | None]:
    """The formatter of twistd's text log (``textFileLogObserver``), with cached timestamps.

    An event whose whole format is ``{line}`` with a ``str`` line (one per
    request) is written without a pass through string.Formatter, which is
    what formatting it would come to.
    """
    timestamps = PerSecondTimestamps()

    def format_line(event: LogEvent) -> str | None:
        line = event.get("line")
        if (
            type(line) is str
            and line
            and event.get("log_format") == PREFORMATTED
            and "log_failure" not in event
            and "log_flattened" not in event
        ):
            text = f"{timestamps(event.get('log_time'))} [{system_of(event)}] {line}"
            return text.replace("\n", "\n\t") + "\n"
        return formatEventAsClassicLogText(event, formatTime=timestamps)

    return format_line


def event_as_json_line(event: LogEvent) -> str:
    """twisted.logger's eventAsJSON plus ``text``, the message as the text log shows it."""
    return eventAsJSON({**event, "text": formatEvent(event)}) + "\n"


#: Rotated log files kept by default (``--log-keep``): twistd itself keeps them all, for ever.
DEFAULT_LOG_KEEP = 5


def open_log(target: str | None, keep: int = DEFAULT_LOG_KEEP) -> IO[Any]:
    """Standard output, or a log file rotated as twistd rotates its own (by size, and on SIGUSR1).

    At most ``keep`` rotated files (``<log>.1`` the newest) stay; older ones are deleted.
    """
    if target is None:
        return sys.stdout
    log_file = LogFile.fromFullPath(target, maxRotatedFiles=keep)
    if not signal.getsignal(signal.SIGUSR1):  # what twistd does: keep a handler someone set

        def rotate(signum: int, frame: Any) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(log_file.rotate)  # type: ignore[attr-defined]

        signal.signal(signal.SIGUSR1, rotate)
    out: IO[Any] = log_file  # LogFile is file-like: write and flush
    return out


def log_observer(log_format: str, target: str | None, keep: int = DEFAULT_LOG_KEEP) -> ILogObserver:
    """The observer writing the daemon's log in ``log_format`` to ``target`` (None: stdout)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}")
    format_event = event_as_json_line if log_format == "json" else classic_text_formatter()
    observer: ILogObserver = FileLogObserver(open_log(target, keep), format_event)
    return observer


class DaemonLogging(MultiService):
    """Wraps the daemon's service; under twistd, makes the application log through our observer."""

    def __init__(
        self, service: IService, log_format: str, target: str | None, keep: int = DEFAULT_LOG_KEEP
    ) -> None:
        MultiService.__init__(self)
        self.log_format = log_format
        self.target = target
        self.keep = keep
        service.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, log_observer(self.log_format, self.target, self.keep))
        MultiService.setServiceParent(self, parent)

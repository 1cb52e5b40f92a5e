"""``--log-format json``: the daemon's log as JSON lines, for log shippers.

twistd picks its log observer after the plugin built the service, and takes an
``ILogObserver`` component of the application over its own text observer. A
plugin never sees the application, so :class:`JsonLogging` sets that component
when twistd makes it the service's parent.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Mapping

from twisted.application.service import IService, MultiService
from twisted.logger import FileLogObserver, ILogObserver, LogEvent, eventAsJSON, formatEvent
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile

LOG_FORMATS = ("text", "json")


def twistd_log_target(twistd_options: Mapping[str, Any]) -> str | None:
    """The log file twistd would write (None: standard output), by twistd's own rules."""
    logfile = twistd_options.get("logfile")
    if logfile == "-" or (not logfile and twistd_options.get("nodaemon")):
        return None
    return str(logfile or "twistd.log")


def event_as_json_line(event: LogEvent) -> str:
    """twisted.logger's eventAsJSON plus ``text``, the message as the text log shows it."""
    return eventAsJSON({**event, "text": formatEvent(event)}) + "\n"


def json_lines_observer(target: str | None) -> ILogObserver:
    """One JSON object per line, no record separator (what log shippers read)."""
    out: IO[Any] = sys.stdout if target is None else LogFile.fromFullPath(target)
    observer: ILogObserver = FileLogObserver(out, event_as_json_line)
    return observer


class JsonLogging(MultiService):
    """Wraps the daemon's service; under twistd, makes the application log JSON lines."""

    def __init__(self, service: IService, target: str | None) -> None:
        MultiService.__init__(self)
        self.target = target
        service.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, json_lines_observer(self.target))
        MultiService.setServiceParent(self, parent)

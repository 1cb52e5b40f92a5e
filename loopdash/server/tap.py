"""The twistd plugin's options and service maker: ``twistd -n loopdash``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from loopdash.derive.notify import DEFAULT_KINDS
from loopdash.local.token import default_token_path, token_file_problem
from loopdash.server.logformat import DaemonLogging, twistd_log_target, twistd_writes_a_file
from loopdash.server.notify import notify_config_problem
from loopdash.server.options import DAEMON_OPTIONS, FLAG, REPEAT, VALUE, DaemonOption
from loopdash.server.service import DashboardConfig, build_dashboard, tcp_endpoint


def _coerce(option: DaemonOption) -> Callable[[str], Any] | None:
    """The option's converter, refusing with a UsageError that names the option.

    A UsageError, not the ValueError twistd would wrap in "Parameter type enforcement failed".
    """
    if option.convert is None:
        return None

    def coerce(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as e:
            raise usage.UsageError(f"{option.flag} {e}") from None

    return coerce


def _appender(option: DaemonOption) -> Callable[[usage.Options, str], None]:
    """The ``opt_`` handler of a repeatable option: each use adds one value."""
    coerce = _coerce(option)

    def handler(self: usage.Options, text: str) -> None:
        self[option.name].append(text if coerce is None else coerce(text))

    handler.__doc__ = option.help
    return handler


class Options(usage.Options):
    """``twistd loopdash`` options, built from :data:`loopdash.server.options.DAEMON_OPTIONS`."""

    synopsis = "[options]"
    longdesc = (
        "Serve the dashboard API of a claude-loop project directory: REST, live "
        "event stream and web page, behind the bearer token in "
        ".claude-loop/dashboard/auth_token.txt (created on first start)."
    )

    optParameters = [
        [option.name, option.short, option.default, option.help, _coerce(option)]
        for option in DAEMON_OPTIONS
        if option.kind == VALUE
    ]
    optFlags = [[option.name, option.short, option.help] for option in DAEMON_OPTIONS if option.kind == FLAG]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        for option in DAEMON_OPTIONS:
            if option.kind == REPEAT:
                self[option.name] = []

    def postOptions(self) -> None:
        if not os.path.isdir(self["root"]):
            raise usage.UsageError(f"--root {self['root']!r} is not a directory")
        problem = token_file_problem(self["token-file"] or default_token_path(os.path.abspath(self["root"])))
        if problem is not None:
            raise usage.UsageError(problem)
        for path in self["notify-config"]:
            problem = notify_config_problem(path)
            if problem is not None:
                raise usage.UsageError(problem)

    def config(self) -> DashboardConfig:
        root = os.path.abspath(self["root"])
        return DashboardConfig(
            root=root,
            listen=self["listen"] or tcp_endpoint(self["port"], self["host"]),
            token_file=self["token-file"],
            stale_after=self["stale-after"],
            cors_origins=tuple(self["cors-origin"]) or ("*",),
            poll_interval=self["poll-interval"],
            keepalive=self["keepalive"],
            use_inotify=not self["no-inotify"],
            metrics_public=bool(self["metrics-public"]),
            idle_timeout=self["idle-timeout"],
            auth_failure_burst=self["auth-failures"],
            allowed_hosts=tuple(self["allowed-host"]),
            max_connections=self["max-connections"],
            request_deadline=self["request-deadline"],
            notify_urls=tuple(self["notify"]),
            notify_configs=tuple(self["notify-config"]),
            notify_kinds=(
                frozenset(self["notify-kinds"].split(","))
                if self["notify-kinds"] is not None
                else DEFAULT_KINDS
            ),
            budget_usd=self["budget"],
            failure_streak=self["failure-streak"],
            public_url=self["public-url"],
            max_entry_bytes=self["max-entry-bytes"],
            layout=self["layout"],
            prd=self["prd"],
            progress=self["progress"],
        )


for _option in DAEMON_OPTIONS:
    if _option.kind == REPEAT:
        setattr(Options, f"opt_{_option.dest}", _appender(_option))


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    service = build_dashboard(options.config(), reactor).service
    # The parent Options are twistd's own (--logfile, --nodaemon, --syslog).
    twistd_options = getattr(options, "parent", None)
    if twistd_options is None or not twistd_writes_a_file(twistd_options):
        return service  # not under twistd, or logging where the user said
    return DaemonLogging(service, options["log-format"], twistd_log_target(twistd_options))

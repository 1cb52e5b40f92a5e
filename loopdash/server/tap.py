"""The twistd plugin's options and service maker: ``twistd -n loopdash``."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from loopdash.derive.status import DEFAULT_STALE_AFTER
from loopdash.local.token import default_token_path, token_file_problem
from loopdash.server.logformat import LOG_FORMATS, DaemonLogging, twistd_log_target, twistd_writes_a_file
from loopdash.server.service import DashboardConfig, build_dashboard, tcp_endpoint


def _positive(kind: str) -> Any:
    def convert(value: str) -> float:
        number = float(value)
        if not number > 0:
            raise ValueError(f"{kind} must be a positive number of seconds")
        return number

    return convert


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve the dashboard API of a claude-loop project directory: REST, live "
        "event stream and web page, behind the bearer token in "
        ".claude-loop/dashboard/auth_token.txt (created on first start)."
    )

    optParameters = [
        ["port", "p", 8080, "TCP port to listen on.", int],
        ["host", None, "127.0.0.1", "Interface to listen on (0.0.0.0 for every interface)."],
        ["root", "r", ".", "Project directory holding prd.json, progress.txt and .claude-loop/."],
        [
            "listen",
            None,
            None,
            (
                "Twisted endpoint string to listen on instead of --host/--port, e.g. "
                "tcp:8080:interface=0.0.0.0 or ssl:8443:privateKey=key.pem:certKey=cert.pem."
            ),
        ],
        [
            "token-file",
            None,
            None,
            "API token file (default: <root>/.claude-loop/dashboard/auth_token.txt).",
        ],
        [
            "stale-after",
            None,
            DEFAULT_STALE_AFTER,
            "Seconds without activity after which a run without summary.json counts as stopped.",
            _positive("--stale-after"),
        ],
        [
            "poll-interval",
            None,
            None,
            (
                "Seconds between polls of the loop's files (default: 1, or 10 while inotify "
                "is watching every directory that matters, since it reports changes at once)."
            ),
            _positive("--poll-interval"),
        ],
        [
            "log-format",
            None,
            "text",
            "Log format: text, or json (one JSON object per line, for log shippers).",
        ],
        [
            "keepalive",
            None,
            30.0,
            "Seconds between keepalive comments on open event streams.",
            _positive("--keepalive"),
        ],
        [
            "idle-timeout",
            None,
            60.0,
            "Seconds a connection may stay idle between requests before it is closed.",
            _positive("--idle-timeout"),
        ],
        [
            "auth-failures",
            None,
            30,
            (
                "Failed authentications allowed from one address before it gets 429 "
                "(they are forgiven at one per second; valid tokens are always served)."
            ),
            int,
        ],
    ]

    optFlags = [
        ["no-inotify", None, "Poll only: do not use inotify to notice file changes at once."],
        [
            "metrics-public",
            None,
            "Serve /metrics without the bearer token, for a Prometheus scraper on this host.",
        ],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["cors-origin"] = []

    def opt_cors_origin(self, origin: str) -> None:
        """Origin allowed to read answers from a browser (repeatable; default: any, '*')."""
        self["cors-origin"].append(origin)

    def postOptions(self) -> None:
        if not os.path.isdir(self["root"]):
            raise usage.UsageError(f"--root {self['root']!r} is not a directory")
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        if not 0 <= self["port"] <= 65535:
            raise usage.UsageError(f"--port {self['port']} is not a TCP port")
        if self["auth-failures"] < 1:
            raise usage.UsageError("--auth-failures must be at least 1")
        problem = token_file_problem(self["token-file"] or default_token_path(os.path.abspath(self["root"])))
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
        )


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    service = build_dashboard(options.config(), reactor).service
    # The parent Options are twistd's own (--logfile, --nodaemon, --syslog).
    twistd_options = getattr(options, "parent", None)
    if twistd_options is None or not twistd_writes_a_file(twistd_options):
        return service  # not under twistd, or logging where the user said
    return DaemonLogging(service, options["log-format"], twistd_log_target(twistd_options))

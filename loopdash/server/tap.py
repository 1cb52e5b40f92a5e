"""The twistd plugin's options and service maker: ``twistd -n loopdash``."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from twisted.application.service import IService
from twisted.internet.error import CannotListenError
from twisted.python import usage

from loopdash.derive.notify import DEFAULT_KINDS
from loopdash.local.daemon import DEAD, RUNNING, DaemonFiles, inspect, remove_quietly
from loopdash.local.token import UnsafeTokenFile, token_file_problem
from loopdash.server.logformat import DaemonLogging, twistd_log_target, twistd_writes_a_file
from loopdash.server.notify import notify_config_problem
from loopdash.server.options import (
    DAEMON_OPTIONS,
    FLAG,
    REPEAT,
    VALUE,
    DaemonOption,
    daemon_option,
    named_value,
    project_budget,
)
from loopdash.server.runtime import RuntimeRecord
from loopdash.server.service import DashboardConfig, FollowRemote, build_dashboard, tcp_endpoint


class Refusal(usage.UsageError):
    """The daemon will not start, for a reason that is not bad usage (unsafe token file, ...).

    A UsageError still, so callers of ``parseOptions`` that catch those keep
    working; under twistd it exits 1, where bad usage exits 2.
    """


#: Exit statuses: bad usage, as argparse and BSD's sysexits use; a refusal.
EXIT_USAGE = 2
EXIT_REFUSED = 1


def exit_refusing(reason: Exception) -> NoReturn:
    """One line on stderr, then exit 2 (usage) or 1 (refusal): never twistd's usage dump."""
    if isinstance(reason, usage.UsageError) and not isinstance(reason, Refusal):
        print(f"twistd loopdash: {reason} (twistd loopdash --help lists the options)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    print(f"twistd loopdash: {reason}", file=sys.stderr)
    raise SystemExit(EXIT_REFUSED)


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
        if option.kind == VALUE and option.name != "root"
    ]
    optFlags = [[option.name, option.short, option.help] for option in DAEMON_OPTIONS if option.kind == FLAG]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        for option in DAEMON_OPTIONS:
            if option.kind == REPEAT:
                self[option.name] = []
        self["root"] = daemon_option("root").default
        #: Every --root given, in order (the first is the default project).
        self["roots"] = []

    def opt_root(self, directory: str) -> None:
        # Not a plain optParameter: --root may be given several times. self["root"]
        # is the last one given (as twistd's parameters go); self["roots"] all of them.
        self["root"] = directory
        self["roots"].append(directory)

    opt_root.__doc__ = daemon_option("root").help
    opt_r = opt_root

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse; under twistd a bad option or a refusal is one line on stderr and an exit status.

        twistd answers a UsageError with 40 lines of usage before the reason
        and exits 1 for everything. Here, under twistd (``parent`` set), bad
        usage exits 2 and a refusal 1, each with one line. Called directly
        (tests, other programs), the exceptions are raised as they are.
        """
        try:
            usage.Options.parseOptions(self, options)
        except usage.UsageError as e:  # a Refusal too
            if getattr(self, "parent", None) is None:
                raise
            exit_refusing(e)

    def postOptions(self) -> None:
        roots = self["roots"] or ([] if self["scan"] else [self["root"]])
        for root in roots:
            if not os.path.isdir(root):
                raise usage.UsageError(f"--root {root!r} is not a directory")
            if not os.access(root, os.R_OK | os.X_OK):
                raise Refusal(f"cannot read the project directory {os.path.abspath(root)}: permission denied")
        for scan in self["scan"]:
            if not os.path.isdir(scan):
                raise usage.UsageError(f"--scan {scan!r} is not a directory")
            if not os.access(scan, os.R_OK | os.X_OK):
                raise Refusal(f"cannot read the directory {os.path.abspath(scan)}: permission denied")
        problem = token_file_problem(self.config().token_path)
        if problem is not None:
            raise Refusal(problem)
        for path in self["notify-config"]:
            problem = notify_config_problem(path)
            if problem is not None:
                raise Refusal(problem)
        remotes = [named_value(text, "URL") for text in self["remote"]]
        names = [name for name, _ in remotes]
        tokens = dict(named_value(text, "PATH") for text in self["remote-token-file"])
        for name in names:
            if names.count(name) > 1:
                raise usage.UsageError(f"--remote {name} is given twice")
            if name not in tokens:
                raise usage.UsageError(f"--remote {name} needs --remote-token-file {name}=PATH")
        for name in tokens:
            if name not in names:
                raise usage.UsageError(f"--remote-token-file {name}=... names no --remote")

    def config(self) -> DashboardConfig:
        roots = [os.path.abspath(root) for root in self["roots"]] or [os.path.abspath(self["root"])]
        return DashboardConfig(
            root=roots[0],
            more_roots=tuple(roots[1:]),
            root_given=bool(self["roots"]),
            scan=tuple(os.path.abspath(scan) for scan in self["scan"]),
            scan_depth=self["scan-depth"],
            scan_interval=self["scan-interval"],
            listen=self["listen"] or tcp_endpoint(self["port"], self["host"]),
            token_file=self["token-file"],
            stale_after=self["stale-after"],
            stall_after=self["stall-after"],
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
            project_budgets=dict(project_budget(text) for text in self["project-budget"]),
            failure_streak=self["failure-streak"],
            public_url=self["public-url"],
            max_entry_bytes=self["max-entry-bytes"],
            layout=self["layout"],
            prd=self["prd"],
            progress=self["progress"],
            use_git=not self["no-git"],
            git_diff_cap=self["git-diff-cap"],
            remotes=tuple(named_value(text, "URL") for text in self["remote"]),
            remote_token_files=dict(named_value(text, "PATH") for text in self["remote-token-file"]),
        )


for _option in DAEMON_OPTIONS:
    if _option.kind == REPEAT:
        setattr(Options, f"opt_{_option.dest}", _appender(_option))


#: twistd's own default pidfile: "./twistd.pid", in whatever directory it runs.
TWISTD_DEFAULT_PIDFILE = "twistd.pid"


def makeService(options: Options, follow_remote: FollowRemote | None = None) -> IService:
    """The dashboard service; under twistd also its pidfile's place, state file and start lines.

    ``follow_remote`` makes the followers of ``--remote`` daemons (the twistd
    plugin's module, :mod:`loopdash.cli.daemon`, passes the client's).

    Under twistd (``options.parent`` set): a pidfile left at twistd's default
    moves to where ``loopdash start`` keeps it, so ``status`` and ``stop`` find
    a foreground daemon; a dashboard already serving this root is a refusal;
    in the foreground the start lines are printed once the port is bound.
    """
    from twisted.internet import reactor

    config = options.config()
    twistd_options = getattr(options, "parent", None)
    # Where `loopdash start/stop/status` look: the first --scan's .loopdash/, else the first root's.
    files = DaemonFiles.for_daemon(config.roots, config.scan)
    if twistd_options is not None:
        claim_the_project(files, twistd_options)
        sys.excepthook = one_line_for_listen_failures(sys.excepthook)
    try:
        dashboard = build_dashboard(config, reactor, follow_remote)
    except (OSError, UnsafeTokenFile) as e:
        if twistd_options is None:
            raise
        exit_refusing(Refusal(_why(e)))
    service: IService = dashboard.service
    if twistd_options is not None:
        settle_the_heap()
        foreground = bool(twistd_options.get("nodaemon"))
        # The terminal twistd was started from: twistd redirects sys.stdout into the log later.
        terminal = sys.stdout if foreground else None
        record = RuntimeRecord(
            files,
            config.token_path,
            dashboard.web.when_listening,
            tls=config.listen.lower().startswith("ssl:"),
            announce=terminal,
            show_token=terminal is not None and terminal.isatty(),
        )
        dashboard.service.addService(record)
    if twistd_options is None or not twistd_writes_a_file(twistd_options):
        return service  # not under twistd, or logging where the user said
    return DaemonLogging(
        service, options["log-format"], twistd_log_target(twistd_options), options["log-keep"]
    )


def settle_the_heap() -> None:
    """Collect what starting left behind, then exempt the rest from garbage collection.

    What a started daemon holds (modules, classes, functions: some 50,000
    objects, and some 40,000 more when Apprise's plugins are loaded for
    ``--notify``) stays for its life, yet every full collection walked all
    of it, holding the interpreter, so the reactor, for 50 to 150 ms (measured
    with bench/notify.py --stalls). Frozen, they are never walked again. Only
    under twistd: a test process building many dashboards must not keep them all.
    """
    gc.collect()
    gc.freeze()


def claim_the_project(files: DaemonFiles, twistd_options: Any) -> None:
    """Refuse when a dashboard already serves this root; keep the pidfile where ``start`` does."""
    found = inspect(files)
    if found.state == RUNNING and found.pid != os.getpid():
        where = f" at {found.url}" if found.url else ""
        exit_refusing(
            Refusal(
                f"a dashboard already serves {files.root} (pid {found.pid}){where}; `loopdash stop` stops it"
            )
        )
    # twistd has made its default absolute by now: ./twistd.pid in the directory it runs in.
    if twistd_options.get("pidfile") in (TWISTD_DEFAULT_PIDFILE, os.path.abspath(TWISTD_DEFAULT_PIDFILE)):
        if found.state == DEAD:
            remove_quietly(files.pidfile)
        try:
            os.makedirs(files.directory, mode=0o700, exist_ok=True)
        except OSError as e:
            exit_refusing(Refusal(f"cannot create {files.directory}: {e.strerror or e}"))
        twistd_options["pidfile"] = files.pidfile


def one_line_for_listen_failures(previous: Callable[..., Any]) -> Callable[..., Any]:
    """An excepthook saying a failure to listen in one line, not twistd's 40-line traceback.

    twistd lets the exception of a failed start escape to the interpreter, which
    prints it to stderr: the log of a daemon, opening ``loopdash logs`` with a
    traceback. A port in use is no bug: say which address and why. Anything
    else keeps its traceback.
    """

    def hook(kind: type[BaseException], value: BaseException, traceback: Any) -> None:
        if isinstance(value, CannotListenError):
            print(f"twistd loopdash: {value}", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    return hook


def _why(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"cannot write {error.filename}: {error.strerror or error}"
    return str(error)

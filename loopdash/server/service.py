"""Service wiring: the parts of the daemon, put together for twistd.

Everything here is assembly; the parts do the work. The reactor is passed in,
so tests build the same service on the reactor they run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site

from loopdash.derive.notify import DEFAULT_FAILURE_STREAK, DEFAULT_KINDS, RuleConfig
from loopdash.derive.status import DEFAULT_STALE_AFTER, DEFAULT_STALL_AFTER
from loopdash.local.daemon import connect_url
from loopdash.local.token import (
    TokenFile,
    UnsafeTokenFile,
    default_token_path,
    ensure_token,
    token_file_problem,
)
from loopdash.loop.discovery import project_id
from loopdash.loop.filecache import Reporter
from loopdash.loop.gitrepo import DEFAULT_FILE_DIFF_CAP, GitReader, limit_libgit2_memory
from loopdash.loop.progress import MAX_ENTRY_BYTES
from loopdash.loop.project import Project
from loopdash.metrics.loop import LoopCollector, LoopSource
from loopdash.metrics.meter import Meter, RouteLabels, file_kind
from loopdash.metrics.prometheus import PrometheusMeter
from loopdash.server.accesslog import AccessLogSite
from loopdash.server.api import DashboardAPI
from loopdash.server.clockstep import ClockStepGuard
from loopdash.server.exposure import endpoint_fields, exposure_warning
from loopdash.server.front import CorsPolicy, FrontResource
from loopdash.server.gitlive import GitLive
from loopdash.server.hosts import HostPolicy
from loopdash.server.limits import DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_DEADLINE, BoundedRequest
from loopdash.server.live import LiveProject
from loopdash.server.notify import AppriseSender, NotificationCenter, NotificationLog, Sender
from loopdash.server.stream import StreamHub, TicketBook
from loopdash.server.throttle import FailureThrottle
from loopdash.server.watcher import WATCHED_POLL_INTERVAL, Watcher
from loopdash.server.webui import web_pages

log = Logger(namespace="loopdash")


@dataclass(frozen=True)
class DashboardConfig:
    """What a user chose on the command line, resolved."""

    root: str
    listen: str
    token_file: str | None = None
    stale_after: float = DEFAULT_STALE_AFTER
    cors_origins: Sequence[str] = ("*",)
    #: Seconds between polls; None: 1 s, or 10 s while inotify watches every directory that matters.
    poll_interval: float | None = None
    #: Seconds between the safety polls while inotify watches every directory that matters.
    watched_poll_interval: float = WATCHED_POLL_INTERVAL
    keepalive: float = 30.0
    use_inotify: bool = True
    #: Serve /metrics without the bearer token (for a scraper on the same host).
    metrics_public: bool = False
    #: Seconds a connection may sit idle between requests (never during an
    #: answer or an open stream) before it is closed.
    idle_timeout: float = 60.0
    #: Failed authentications one address may make before it gets 429s.
    auth_failure_burst: int = 30
    #: Host names answered besides the defaults (see loopdash.server.hosts); "*" for any.
    allowed_hosts: Sequence[str] = ()
    #: Open connections (event streams included) past which new ones get 503.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Seconds a request's head and body may take to arrive, from its first byte.
    request_deadline: float = DEFAULT_REQUEST_DEADLINE
    #: Apprise URLs to notify (``--notify``); secrets belong in ``notify_configs``.
    notify_urls: Sequence[str] = ()
    #: Apprise configuration files, private to the user (``--notify-config``).
    notify_configs: Sequence[str] = ()
    #: Notification kinds that fire (see loopdash.derive.notify.KINDS).
    notify_kinds: frozenset[str] = DEFAULT_KINDS
    #: The run's budget in USD (``--budget``); None: no budget.
    budget_usd: float | None = None
    #: Failed iterations in a row that make a failure streak.
    failure_streak: int = DEFAULT_FAILURE_STREAK
    #: Seconds of quiet after which an unfinished run counts as stalled (docs/liveness.md).
    stall_after: float = DEFAULT_STALL_AFTER
    #: The page's address, put in every notification; None: derived from ``listen``.
    public_url: str | None = None
    #: Bytes of one progress.txt entry served or streamed at most (longer: cut, ``truncated``).
    max_entry_bytes: int = MAX_ENTRY_BYTES
    #: A loop family forced with --layout (None: detected from what is on disk).
    layout: str | None = None
    #: The plan and the log, relative to the root, when given with --prd and --progress.
    prd: str | None = None
    progress: str | None = None
    #: Read the project's git repository (commits, diffs, working tree).
    use_git: bool = True
    #: Bytes of one file's patch in a commit's detail before it is cut (``truncated``).
    git_diff_cap: int = DEFAULT_FILE_DIFF_CAP
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def token_path(self) -> str:
        return self.token_file or default_token_path(self.root)


def tcp_endpoint(port: int, host: str) -> str:
    """A Twisted endpoint string for ``host:port`` (IPv6 colons escaped)."""
    return f"tcp:{port}:interface={host.replace(':', chr(92) + ':')}"


def page_link(config: DashboardConfig) -> str | None:
    """The page's address for notifications: ``--public-url``, else the TCP endpoint's, else None."""
    if config.public_url:
        return config.public_url
    kind, positional, named = endpoint_fields(config.listen)
    if kind not in ("tcp", "tcp6", "ssl") or not positional or not positional[0].isdigit():
        return None
    port = int(positional[0])
    if port == 0:
        return None
    url = connect_url(named.get("interface", "127.0.0.1").replace("\\:", ":"), port)
    if kind == "ssl":
        url = "https" + url.removeprefix("http")
    return url + "/"


def notifications_path(config: DashboardConfig) -> str:
    return os.path.join(os.path.abspath(config.root), ".claude-loop", "dashboard", "notifications.jsonl")


def report_bad_file(path: str, reason: str) -> None:
    log.warn("Cannot read {path}: {reason} (serving its last good reading, if any)", path=path, reason=reason)


def once_per_cause(
    report: Reporter, window: float = 60.0, clock: Callable[[], float] = time.monotonic
) -> Reporter:
    """Pass on a report unless the same file had the same cause reported within ``window`` seconds.

    Several readers cache one file (metrics.json: the full metrics and the
    history row); each reports a bad file once, and this makes that once in all.
    """
    last: dict[str, tuple[str, float]] = {}

    def deduplicated(path: str, reason: str) -> None:
        now = clock()
        previous = last.get(path)
        if previous is not None and previous[0] == reason and now - previous[1] < window:
            return
        last[path] = (reason, now)
        report(path, reason)

    return deduplicated


def refuse_unsafe_token_file(problem: str) -> None:
    """Say why every request is refused (the token file tells each cause once)."""
    log.warn("{problem} Until then every request is refused.", problem=problem)


def token_is_back() -> None:
    log.info("The token file holds a usable token again: requests are served.")


def counting_reporter(meter: Meter) -> Reporter:
    """Report a bad file as :func:`report_bad_file` does, and count it by kind."""

    def report(path: str, reason: str) -> None:
        report_bad_file(path, reason)
        meter.file_unreadable(file_kind(path))

    return report


class ListeningService(StreamServerEndpointService):
    """Listen on an endpoint; a failure to listen fails the start (twistd exits 1)."""

    _raiseSynchronously = True

    def __init__(self, endpoint: Any, factory: Site) -> None:
        StreamServerEndpointService.__init__(self, endpoint, factory)

    def when_listening(self) -> Deferred[IListeningPort]:
        """Fires with the listening port once bound (tests read the port-0 number from it)."""
        waiting = self._waitingForPort
        if waiting is None:
            raise RuntimeError("the service has not been started")
        result: Deferred[IListeningPort] = Deferred()

        def forward(port: IListeningPort) -> IListeningPort:
            result.callback(port)
            return port

        waiting.addCallback(forward)
        return result


@dataclass
class Dashboard:
    """The assembled daemon: the web site and the objects behind it."""

    config: DashboardConfig
    project: Project
    api: DashboardAPI
    site: Site
    service: MultiService
    web: ListeningService
    hub: StreamHub
    watcher: Watcher
    meter: PrometheusMeter
    notifications: NotificationCenter


def build_dashboard(config: DashboardConfig, reactor: Any) -> Dashboard:
    root = os.path.abspath(config.root)
    problem = token_file_problem(config.token_path)
    if problem is not None:
        raise UnsafeTokenFile(problem)
    if ensure_token(config.token_path):
        log.info("Created a new API token in {path}", path=config.token_path)
    meter = PrometheusMeter()
    project = Project(
        root,
        report=once_per_cause(counting_reporter(meter)),
        layout=config.layout,
        prd=config.prd,
        progress=config.progress,
    )
    hub = StreamHub(reactor, keepalive=config.keepalive, meter=meter)
    meter.count_streams(lambda: len(hub.subscribers))
    git: GitLive | None = None
    if config.use_git:
        limit_libgit2_memory()
        git = GitLive(GitReader(root, config.git_diff_cap), reactor, lambda: live.plan_ids())
    live = LiveProject(
        project,
        reactor,
        config.stale_after,
        max_entry_bytes=config.max_entry_bytes,
        stall_after=config.stall_after,
        git=git,
    )
    loop_source = LoopSource(project_id(os.path.basename(root)), live, config.budget_usd)
    meter.register(LoopCollector(lambda: (loop_source,), reactor, config.stale_after, config.stall_after))
    senders: list[Sender] = []
    apprise_sender: AppriseSender | None = None
    if config.notify_urls or config.notify_configs:
        apprise_sender = AppriseSender(reactor, config.notify_urls, config.notify_configs)
        senders.append(apprise_sender)
    notifications = NotificationCenter(
        RuleConfig(config.notify_kinds, config.failure_streak, config.budget_usd),
        NotificationLog(notifications_path(config)),
        hub,
        reactor,
        senders,
        project_name=lambda: prd.project if (prd := live.snapshot().prd.value) is not None else None,
        link=page_link(config),
        stall_after=config.stall_after,
    )
    api = DashboardAPI(
        project,
        TokenFile(config.token_path, on_problem=refuse_unsafe_token_file, on_recovered=token_is_back),
        reactor,
        config.stale_after,
        hub,
        TicketBook(reactor),
        live=live,
        meter=meter,
        metrics_public=config.metrics_public,
        throttle=FailureThrottle(reactor, burst=config.auth_failure_burst),
        notifications=notifications,
        git=git,
    )
    pages = web_pages()
    front = FrontResource(
        api.resource(),
        CorsPolicy(config.cors_origins),
        pages=pages,
        meter=meter,
        route_of=RouteLabels(api.app.url_map),
        methods_for=api.allowed_methods,
        page_route_of=pages.webui.route_label,
        hosts=HostPolicy.build(config.listen, config.allowed_hosts),
    )
    site = AccessLogSite(
        front, reactor, max_connections=config.max_connections, request_deadline=config.request_deadline
    )
    site.timeOut = config.idle_timeout
    # No "Starting factory <AccessLogSite object at 0x...>" lines: nothing a user can act on.
    site.noisy = False
    site.requestFactory = BoundedRequest
    warning = exposure_warning(config.listen)
    if warning is not None:
        log.warn("{warning}", warning=warning)
    service = MultiService()
    # First to start: keepalives, polls and the stall clock keep their intervals
    # when the wall clock steps (docs/liveness.md).
    service.addService(ClockStepGuard(reactor))
    if git is not None:
        # Its thread starts before the watcher's first poll and stops after the watcher.
        service.addService(git)
    # The watcher starts first and stops last: MultiService stops children in
    # reverse, so the port closes before the hub ends the open streams.
    watcher = Watcher(
        project,
        hub,
        reactor,
        config.stale_after,
        config.poll_interval,
        config.use_inotify,
        live=live,
        meter=meter,
        watched_interval=config.watched_poll_interval,
        stall_after=config.stall_after,
        git=git,
        threads=reactor,
    )
    watcher.observers.append(notifications.observe)
    service.addService(watcher)
    if apprise_sender is not None:
        service.addService(apprise_sender)
    endpoint = serverFromString(reactor, config.listen)
    web = ListeningService(endpoint, site)
    service.addService(web)
    return Dashboard(config, project, api, site, service, web, hub, watcher, meter, notifications)

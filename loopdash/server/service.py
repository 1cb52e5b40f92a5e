"""Service wiring: the parts of the daemon, put together for twistd.

Everything here is assembly; the parts do the work. The reactor is passed in,
so tests build the same service on the reactor they run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site

from loopdash.derive.notify import DEFAULT_FAILURE_STREAK, DEFAULT_KINDS, RuleConfig
from loopdash.derive.status import DEFAULT_STALE_AFTER, DEFAULT_STALL_AFTER
from loopdash.local.daemon import connect_url
from loopdash.local.token import (
    SCAN_DIR,
    TokenFile,
    UnsafeTokenFile,
    default_token_path,
    ensure_token,
    scan_token_path,
    token_file_problem,
)
from loopdash.loop.discovery import project_id, unique_ids
from loopdash.loop.filecache import Reading, Reporter
from loopdash.loop.gitrepo import DEFAULT_FILE_DIFF_CAP, GitReader, limit_libgit2_memory
from loopdash.loop.models import Prd
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
from loopdash.server.gitlive import GitLive, GitThread
from loopdash.server.hosts import HostPolicy
from loopdash.server.limits import DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_DEADLINE, BoundedRequest
from loopdash.server.live import LiveProject
from loopdash.server.memtrim import MemoryTrim, glibc_malloc_trim
from loopdash.server.notify import AppriseSender, NotificationCenter, NotificationLog, Sender
from loopdash.server.projects import (
    HubService,
    ProjectBundle,
    ProjectChannel,
    ProjectRegistry,
    RemoteRows,
)
from loopdash.server.scanner import Scanner
from loopdash.server.stream import StreamHub, TicketBook
from loopdash.server.throttle import FailureThrottle
from loopdash.server.watcher import WATCHED_POLL_INTERVAL, SharedNotifier, Watcher
from loopdash.server.webui import web_pages

log = Logger(namespace="loopdash")

#: Seconds between a multi-project daemon's safety polls of a project with no live run,
#: while inotify watches its files (a single-project daemon keeps --poll-interval's rule).
ENDED_POLL_INTERVAL = 60.0
#: ``--scan-depth``: levels below a scan folder searched (the folder itself is level 0).
DEFAULT_SCAN_DEPTH = 3
#: ``--scan-interval``: seconds between rescans (inotify on the scanned folders notices most at once).
DEFAULT_SCAN_INTERVAL = 10.0


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
    #: Budgets of single projects by id (``--project-budget``), in place of ``budget_usd``.
    project_budgets: Mapping[str, float] = field(default_factory=dict)
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
    #: More ``--root`` projects, after ``root`` (docs/projects.md).
    more_roots: Sequence[str] = ()
    #: Whether ``root`` was chosen (a ``--root``), not the default current directory: with
    #: ``--scan`` and no ``--root`` the daemon serves the scanned projects only.
    root_given: bool = True
    #: Folders whose loop projects are discovered and served (``--scan``).
    scan: Sequence[str] = ()
    #: Levels below a scan folder searched for projects (the folder itself is level 0).
    scan_depth: int = DEFAULT_SCAN_DEPTH
    #: Seconds between rescans of the scan folders (inotify notices most changes at once).
    scan_interval: float = DEFAULT_SCAN_INTERVAL
    #: Other daemons whose projects are listed here: (NAME, URL), from ``--remote``.
    remotes: Sequence[tuple[str, str]] = ()
    #: Each remote's token file, by NAME (``--remote-token-file``).
    remote_token_files: Mapping[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def roots(self) -> tuple[str, ...]:
        """The ``--root`` projects: ``root`` then ``more_roots``; none when only ``--scan`` is given."""
        if self.scan and not self.root_given:
            return ()
        return (self.root, *self.more_roots)

    @property
    def multi(self) -> bool:
        """A multi-project daemon: more than one ``--root``, any ``--scan`` or any ``--remote`` (docs/projects.md)."""
        return bool(self.scan) or len(self.roots) > 1 or bool(self.remotes)

    def budget_for(self, project_id: str) -> float | None:
        """The budget of the project ``project_id`` in USD: its own, else ``--budget``, else None."""
        return self.project_budgets.get(project_id, self.budget_usd)

    @property
    def token_path(self) -> str:
        """``--token-file``; else, in scan mode, ``<first scan>/.loopdash/auth_token.txt``; else the root's."""
        if self.token_file:
            return self.token_file
        if self.scan:
            return scan_token_path(self.scan[0])
        return default_token_path(self.root)


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


def scan_notifications_path(scan_root: str, ident: str) -> str:
    """Where a discovered project's notifications are kept: in the scanning daemon's own
    folder, never in the project's (a file written there could change what family it looks like)."""
    return os.path.join(os.path.abspath(scan_root), SCAN_DIR, "notifications", f"{ident}.jsonl")


def notifications_path(root: str) -> str:
    """Where a ``--root`` project's notifications are kept."""
    return os.path.join(os.path.abspath(root), ".claude-loop", "dashboard", "notifications.jsonl")


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
    """The assembled daemon: the web site and the objects behind it.

    ``projects`` holds every served project's bundle; ``project``, ``watcher``
    and ``notifications`` are the default project's (what the plain routes
    serve), for the code and tests written when a daemon served one project.
    """

    config: DashboardConfig
    projects: ProjectRegistry
    api: DashboardAPI
    site: Site
    service: MultiService
    web: ListeningService
    hub: StreamHub
    meter: PrometheusMeter
    #: Makes the bundle of a project found while the daemon runs (the scanner's).
    bundles: BundleMaker
    #: Keeps the projects below the --scan folders in step with the disk (None: no --scan).
    scanner: Scanner | None = None

    def _default(self) -> ProjectBundle:
        bundle = self.projects.default()
        if bundle is None:
            raise LookupError("this daemon serves no project yet")
        return bundle

    @property
    def project(self) -> Project:
        return self._default().project

    @property
    def watcher(self) -> Watcher:
        return self._default().watcher

    @property
    def notifications(self) -> NotificationCenter:
        return self._default().notifications


class BundleMaker:
    """Makes the parts of one served project (:class:`ProjectBundle`), as the config says.

    Every project of a daemon shares its hub (through its own tagged
    channel), its meter, its notification senders and its one git thread.
    """

    def __init__(
        self,
        config: DashboardConfig,
        reactor: Any,
        hub: StreamHub,
        meter: PrometheusMeter,
        senders: Sequence[Sender],
        git_thread: GitThread | None,
        multi: bool,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.hub = hub
        self.meter = meter
        self.senders = list(senders)
        self.git_thread = git_thread
        self.multi = multi
        self.report = once_per_cause(counting_reporter(meter))
        #: A multi-project daemon's one inotify instance for every project (None: one each).
        self.notifiers: SharedNotifier | None = SharedNotifier(reactor) if multi else None

    def make(
        self,
        ident: str,
        root: str,
        path: str,
        notifications_file: str,
        family: str | None = None,
        detect: bool = False,
        plan: tuple[str, Reading[Prd]] | None = None,
    ) -> ProjectBundle:
        """The bundle of the project in ``root`` (absolute), served as ``ident``, not started.

        ``detect``: a discovered project's loop family is found on disk; a
        ``--root`` project takes ``--layout``, ``--prd`` and ``--progress``.
        ``plan``: discovery's reading of the plan (:class:`Project` starts from it).
        """
        config, reactor = self.config, self.reactor
        project = Project(
            root,
            report=self.report,
            layout=None if detect else config.layout,
            prd=None if detect else config.prd,
            progress=None if detect else config.progress,
            plan=plan,
        )
        channel = ProjectChannel(self.hub, ident if self.multi else None)
        git: GitLive | None = None
        if self.git_thread is not None:
            git = GitLive(
                GitReader(root, config.git_diff_cap),
                reactor,
                lambda: live.plan_ids(),
                pool=self.git_thread.pool,
            )
        live = LiveProject(
            project,
            reactor,
            config.stale_after,
            max_entry_bytes=config.max_entry_bytes,
            stall_after=config.stall_after,
            git=git,
        )
        notifications = NotificationCenter(
            RuleConfig(config.notify_kinds, config.failure_streak, config.budget_for(ident)),
            NotificationLog(notifications_file),
            channel,
            reactor,
            self.senders,
            project_name=lambda: prd.project if (prd := live.snapshot().prd.value) is not None else None,
            link=page_link(config),
            stall_after=config.stall_after,
        )
        watcher = Watcher(
            project,
            channel,
            reactor,
            config.stale_after,
            config.poll_interval,
            config.use_inotify,
            live=live,
            meter=self.meter,
            watched_interval=config.watched_poll_interval,
            # Many projects, most at rest: their safety polls are rarer (inotify reports writes).
            ended_interval=ENDED_POLL_INTERVAL if self.multi else None,
            notifiers=self.notifiers,
            stall_after=config.stall_after,
            git=git,
            threads=reactor,
        )
        watcher.observers.append(notifications.observe)
        bundle = ProjectBundle(
            ident, root, path, project, live, watcher, notifications, channel, git=git, found_family=family
        )
        if git is not None:
            # Its refreshes start before the watcher's first poll and stop after the watcher.
            bundle.service.addService(git)
        bundle.service.addService(watcher)
        return bundle


def served_roots(config: DashboardConfig) -> list[tuple[str, str, str]]:
    """(id, absolute root, row path) of each ``--root`` project, in the order given."""
    roots = [os.path.abspath(root) for root in config.roots]
    ids = unique_ids([project_id(os.path.basename(root)) for root in roots])
    scans = [os.path.abspath(scan) for scan in config.scan]
    rows = []
    for ident, root in zip(ids, roots, strict=True):
        path = root
        for scan in scans:
            if root == scan or root.startswith(scan.rstrip(os.sep) + os.sep):
                path = os.path.relpath(root, scan).replace(os.sep, "/")
                break
        rows.append((ident, root, path))
    return rows


#: Makes the follower of a ``--remote`` daemon from (NAME, URL, token file, publish, reactor):
#: a service whose ``rows()`` the registry lists (:class:`RemoteRows`).
#: ``loopdash.client.remote.RemoteLink`` is one; the server may not import the client
#: (tests/test_layers.py), so the twistd plugin's module (``loopdash.cli.daemon``) passes it.
FollowRemote = Callable[[str, str, str, Callable[[str, Any, str], None], Any], Service]


def build_dashboard(
    config: DashboardConfig, reactor: Any, follow_remote: FollowRemote | None = None
) -> Dashboard:
    if config.remotes and follow_remote is None:
        raise ValueError(
            "--remote needs a follower of remote daemons (run the daemon through `twistd loopdash`)"
        )
    problem = token_file_problem(config.token_path)
    if problem is not None:
        raise UnsafeTokenFile(problem)
    if ensure_token(config.token_path):
        log.info("Created a new API token in {path}", path=config.token_path)
    meter = PrometheusMeter()
    hub = StreamHub(reactor, keepalive=config.keepalive, meter=meter)
    meter.count_streams(lambda: len(hub.subscribers))
    git_thread: GitThread | None = None
    if config.use_git:
        limit_libgit2_memory()
        git_thread = GitThread()
    senders: list[Sender] = []
    apprise_sender: AppriseSender | None = None
    if config.notify_urls or config.notify_configs:
        apprise_sender = AppriseSender(reactor, config.notify_urls, config.notify_configs)
        senders.append(apprise_sender)
    roots = served_roots(config)
    projects = ProjectRegistry(hub, reactor, config.multi, preferred_default=roots[0][0] if roots else None)
    bundles = BundleMaker(config, reactor, hub, meter, senders, git_thread, config.multi)
    for ident, root, path in roots:
        projects.add(bundles.make(ident, root, path, notifications_path(root)))
    scanner: Scanner | None = None
    if config.scan:
        scanner = Scanner(
            config.scan,
            config.scan_depth,
            config.scan_interval,
            projects,
            lambda found, ident, scan_root: bundles.make(
                ident,
                found.path,
                found.relative,
                scan_notifications_path(scan_root, ident),
                family=found.family,
                detect=True,
                plan=found.plan,
            ),
            reactor,
            config.use_inotify,
        )
        # Before the start: the projects there are now are served from the first
        # answer on, without a project_added each.
        scanner.scan()
    meter.register(
        LoopCollector(
            lambda: [LoopSource(b.id, b.live, config.budget_for(b.id)) for b in projects.bundles()],
            reactor,
            config.stale_after,
            config.stall_after,
        )
    )
    api = DashboardAPI(
        projects,
        TokenFile(config.token_path, on_problem=refuse_unsafe_token_file, on_recovered=token_is_back),
        reactor,
        config.stale_after,
        hub,
        TicketBook(reactor),
        meter=meter,
        metrics_public=config.metrics_public,
        throttle=FailureThrottle(reactor, burst=config.auth_failure_burst),
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
    # Freed heap pages back to the system now and then: RSS that follows memory in use.
    service.addService(MemoryTrim(reactor, glibc_malloc_trim()))
    if git_thread is not None:
        # The git thread starts before any watcher's first poll and stops after the last watcher.
        service.addService(git_thread)
    # MultiService stops children in reverse: the port closes first, then the
    # watchers stop, then the hub ends the open streams.
    service.addService(HubService(hub))
    service.addService(projects)
    for name, url in config.remotes:
        assert follow_remote is not None
        link = follow_remote(name, url, config.remote_token_files[name], projects.publish_remote, reactor)
        if not isinstance(link, RemoteRows):
            raise TypeError(f"the follower of --remote {name} lists no rows")
        projects.remote_sources.append(link)
        service.addService(link)
    if scanner is not None:
        # Stops first: no project is added while the others stop.
        service.addService(scanner)
    if apprise_sender is not None:
        service.addService(apprise_sender)
    endpoint = serverFromString(reactor, config.listen)
    web = ListeningService(endpoint, site)
    service.addService(web)
    return Dashboard(config, projects, api, site, service, web, hub, meter, bundles, scanner)

"""The REST API of dashboard-api.md as a Klein app object.

:class:`DashboardAPI` holds its collaborators (the project, the token source,
the clock) and hands out ``resource()``. Authentication is part of the route
decorator, so no route can forget it, and every error leaves as JSON
``{"error": ...}`` through handlers registered once on the class.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

from klein import Klein
from msgspec import UNSET, UnsetType
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from loopdash import API_VERSION, __version__
from loopdash.contract.shapes import HealthAnswer, SourceAnswer, StreamTicketAnswer
from loopdash.derive.status import iso_utc_at
from loopdash.local.token import TokenFile
from loopdash.loop.gitrepo import is_sha
from loopdash.loop.project import Project, is_run_id, run_id_start
from loopdash.metrics.meter import NULL_METER, Meter
from loopdash.server.auth import INVALID_TOKEN, Denied, bearer_token, check_token
from loopdash.server.encoding import encode_json
from loopdash.server.gitlive import GitLive
from loopdash.server.live import LiveProject
from loopdash.server.notify import MAX_NOTIFICATION_PAGE, NotificationCenter
from loopdash.server.openapi import build_openapi
from loopdash.server.projects import ProjectBundle, ProjectRegistry
from loopdash.server.stream import StreamHub, TicketBook
from loopdash.server.throttle import FailureThrottle

#: Largest page a client may ask for; larger limits are capped, not refused.
MAX_LOG_PAGE = 1000
MAX_HISTORY_PAGE = 1000
MAX_COMMIT_PAGE = 200

JSON_CONTENT_TYPE = b"application/json; charset=utf-8"
#: On every JSON answer: the id of the last event published when the answer
#: was made. The answer shows every change up to that event; a client applies
#: only later events to it, and resumes the stream from the oldest such id.
EVENT_ID_HEADER = b"X-Loopdash-Event-Id"


#: A plain route's answer on a scanning daemon that has found no project yet.
NO_PROJECT = "No project found"

#: The ``git`` field when the daemon does not read the repository.
NOT_READ = {"state": "missing", "reason": "This daemon does not read git repositories"}


class Clock(Protocol):
    def seconds(self) -> float: ...


class ApiError(Exception):
    """An answer other than 200, with the message for the JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


def json_body(request: IRequest, value: object, status: int = 200) -> bytes:
    """Answer with ``value`` as JSON (bytes are taken as JSON already encoded)."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", JSON_CONTENT_TYPE)
    request.setHeader(b"Cache-Control", b"no-store")
    return value if isinstance(value, bytes) else encode_json(value)


def query_text(request: IRequest, name: str) -> str | None:
    values = request.args.get(name.encode()) if request.args else None
    if not values:
        return None
    last: bytes = values[-1]
    return last.decode("utf-8", errors="replace")


def query_int(request: IRequest, name: str, default: int, maximum: int) -> int:
    """A non-negative integer query parameter; 400 when malformed, capped at ``maximum``."""
    raw = query_text(request, name)
    if raw is None or raw.strip(" \t") == "":
        return default
    digits = raw.strip(" \t")
    # ASCII digits only: int() would also take "+5", "1_0" and other scripts' digits.
    if not (digits.isascii() and digits.isdigit()):
        raise ApiError(400, f"Invalid value for '{name}': expected a non-negative integer")
    if len(digits) > 18:
        # Beyond any page or offset; and int() refuses strings of over 4,300 digits.
        return maximum
    return min(int(digits), maximum)


TOO_MANY_FAILURES = "Too many failed authentication attempts; retry later"


def client_address(request: IRequest) -> str:
    """The peer's address, the key for throttling ("unix" for a UNIX socket)."""
    host = getattr(request.getClientAddress(), "host", None)
    return host if isinstance(host, str) else "unix"


Handler = TypeVar("Handler", bound=Callable[..., Any])

#: How a route authenticates: the bearer token, the token or a stream ticket, not at
#: all, or (``metrics``) the token unless the daemon serves its metrics publicly.
Auth = Literal["token", "token_or_ticket", "public", "metrics"]


#: ``/api/projects/<id>/...``: a per-project route is also served under this prefix.
PROJECT_PREFIX = "/api/projects/<string:project_id>"


def project_path(path: str) -> str:
    """The per-project form of a plain route: ``/api/status`` -> ``/api/projects/<id>/status``."""
    return PROJECT_PREFIX + path.removeprefix("/api")


def api_route(
    app: Klein,
    path: str,
    *,
    auth: Auth = "token",
    methods: tuple[str, ...] = ("GET",),
    raw: bool = False,
    per_project: bool = False,
) -> Callable[[Handler], Handler]:
    """Route ``path`` to a handler, authenticated as ``auth`` says.

    The handler returns a JSON value, encoded here; a ``raw`` handler returns
    what Klein should render (the stream returns a Deferred). A
    ``per_project`` handler takes the :class:`ProjectBundle` it answers for
    after the request, and is routed twice: at ``path`` for the default
    project, and at ``/api/projects/<id>/...`` for the project ``id`` (404
    ``Project not found: <id>`` when there is none). Authentication comes
    first, so an unknown id tells nothing to a caller without the token.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def endpoint(self: DashboardAPI, request: IRequest, **kwargs: Any) -> Any:
            if auth == "token":
                self.authenticate(request)
            elif auth == "token_or_ticket":
                self.authenticate_stream(request)
            elif auth == "metrics" and not self.metrics_public:
                self.authenticate(request)
            if per_project:
                result = handler(self, request, self.bundle(kwargs.pop("project_id", None)), **kwargs)
            else:
                result = handler(self, request, **kwargs)
            if raw:
                return result

            def answer(value: object) -> bytes:
                # Read when the body is made, not when the request came: an
                # async handler may wait while events are published.
                request.setHeader(EVENT_ID_HEADER, self.hub.last_id.encode("ascii"))
                return json_body(request, value)

            if inspect.iscoroutine(result):
                return ensureDeferred(result).addCallback(answer)
            return answer(result)

        app.route(path, methods=list(methods))(endpoint)
        if per_project:
            app.route(project_path(path), methods=list(methods), endpoint="project_" + handler.__name__)(
                endpoint
            )
        return handler

    return decorate


class DashboardAPI:
    """The REST routes over one project."""

    app = Klein()
    # Before any route is added (each Rule takes the Map's setting when added):
    # werkzeug would merge `//` and answer 308 with a URL built from the
    # request's Host. A path that is not exactly a route is 404, never a redirect.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = True  # no rule ends in "/", so this redirects nothing
    log = Logger()

    def __init__(
        self,
        projects: ProjectRegistry,
        tokens: TokenFile,
        clock: Clock,
        stale_after: float,
        hub: StreamHub,
        tickets: TicketBook,
        meter: Meter = NULL_METER,
        metrics_public: bool = False,
        throttle: FailureThrottle | None = None,
    ) -> None:
        #: Every served project; the plain routes answer for its default one.
        self.projects = projects
        self.throttle = throttle if throttle is not None else FailureThrottle(clock)
        self.meter = meter
        self.metrics_public = metrics_public
        self.tokens = tokens
        self.clock = clock
        self.stale_after = stale_after
        self.hub = hub
        self.tickets = tickets
        hub.current_status = projects.default_status
        hub.status_project = projects.default_tag
        hub.project_status = projects.project_status

    def bundle(self, project_id: str | None) -> ProjectBundle:
        """The project ``project_id`` (None: the default one); 404 when there is none."""
        if project_id is None:
            found = self.projects.default()
            if found is None:
                raise ApiError(404, NO_PROJECT)
            return found
        found = self.projects.get(project_id)
        if found is None:
            raise ApiError(404, f"Project not found: {project_id}")
        return found

    # The default project's parts, as a single-project daemon had them.
    @property
    def project(self) -> Project:
        return self.bundle(None).project

    @property
    def live(self) -> LiveProject:
        return self.bundle(None).live

    @property
    def git(self) -> GitLive | None:
        return self.bundle(None).git

    @property
    def notifications(self) -> NotificationCenter | None:
        return self.bundle(None).notifications

    def resource(self) -> IResource:
        return self.app.resource()

    def allowed_methods(self, path: bytes) -> list[str]:
        """The methods routed at ``path`` (HEAD comes with GET); [] when no route matches."""
        adapter = self.app.url_map.bind("localhost")
        return list(adapter.allowed_methods(path.decode("utf-8", errors="replace")))

    def authenticate(self, request: IRequest) -> None:
        presented = bearer_token(request.requestHeaders.getRawHeaders(b"authorization"))
        check_token(presented, self.tokens.current())

    def authenticate_stream(self, request: IRequest) -> None:
        """The bearer token; or, for EventSource (which cannot send headers), a query credential.

        The Authorization header wins when present. Otherwise ``?token=`` (what
        existing pages send; compared in constant time, throttled on failure
        like the header) or ``?ticket=`` (single use; a HEAD checks it without
        using it up, since a HEAD opens no stream).
        """
        if request.requestHeaders.hasHeader(b"authorization"):
            self.authenticate(request)
            return
        tokens = request.args.get(b"token") if request.args else None
        if tokens:
            if len(tokens) != 1:
                raise Denied(401, "Send one token")
            try:
                presented = tokens[0].decode("ascii")
            except UnicodeDecodeError:
                raise Denied(403, INVALID_TOKEN) from None
            check_token(presented, self.tokens.current())
            return
        ticket = query_text(request, "ticket")
        if ticket is None:
            self.authenticate(request)
            return
        valid = self.tickets.valid(ticket) if request.method == b"HEAD" else self.tickets.redeem(ticket)
        if not valid:
            raise Denied(403, "Invalid or expired stream ticket")

    def current_status(self) -> dict[str, Any]:
        return dict(self.projects.default_status())

    @staticmethod
    def _known_run(p: ProjectBundle, run_id: str | None) -> str | None:
        """The run id, checked: 404 for one that does not exist (or is not a run id)."""
        if run_id is None:
            return None
        if not p.live.has_run(run_id):
            raise ApiError(404, f"Run not found: {run_id}")
        return run_id

    # -- routes ----------------------------------------------------------------

    @api_route(app, "/api/health", auth="public")
    def health(self, request: IRequest) -> object:
        return HealthAnswer(
            status="ok",
            timestamp=iso_utc_at(self.clock.seconds()),
            version=API_VERSION,
            server_version=__version__,
            source=self._source(),
        )

    def _source(self) -> SourceAnswer | UnsetType:
        """The default project's loop family and its files: what a new user checks first."""
        default = self.projects.default()
        if default is None:
            return UNSET
        source = default.project.source
        described = source.describe(default.project.root)
        return SourceAnswer(
            family=source.family,
            prd=str(described["prd"]),
            progress=str(described["progress"]),
            status=described["status"] if isinstance(described["status"], str) else None,
            metrics=described["metrics"] if isinstance(described["metrics"], str) else None,
            run_id=source.run_id,
            found=tuple(str(p) for p in described["found"] if isinstance(p, str))
            if isinstance(described["found"], list)
            else (),
        )

    @api_route(app, "/api/openapi.json", auth="public")
    def openapi(self, request: IRequest) -> object:
        return build_openapi(MAX_LOG_PAGE, MAX_HISTORY_PAGE, __version__, MAX_COMMIT_PAGE)

    @api_route(app, "/api/projects")
    def project_list(self, request: IRequest) -> object:
        return self.projects.list_body()

    @api_route(app, "/api/status", per_project=True)
    def status(self, request: IRequest, p: ProjectBundle) -> object:
        return p.live.status_body()

    @api_route(app, "/api/stream", auth="token_or_ticket", raw=True)
    def stream(self, request: IRequest) -> object:
        """Every event of the daemon (every project's, on a multi-project daemon)."""
        return self._open_stream(request, None)

    @api_route(app, project_path("/api/stream"), auth="token_or_ticket", raw=True)
    def project_stream(self, request: IRequest, project_id: str) -> object:
        """One project's events (the same ids as the combined stream's, so a resume works)."""
        p = self.bundle(project_id)
        return self._open_stream(request, self.projects.tag(p))

    def _open_stream(self, request: IRequest, project: str | None) -> object:
        if request.method == b"HEAD":
            # Headers as a GET would have them, then the end: a HEAD must not stay open.
            request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
            request.setHeader(b"Cache-Control", b"no-cache")
            return b""
        last_event_id = request.getHeader(b"last-event-id")
        if last_event_id is None:
            resume = query_text(request, "last_event_id")
        else:
            resume = last_event_id.decode("utf-8", errors="replace")
        # Klein hands us twisted.web.server.Request; the hub needs its producer API.
        assert isinstance(request, Request)
        return self.hub.subscribe(request, resume, project)

    @api_route(app, "/api/stream/ticket", methods=("POST",))
    def stream_ticket(self, request: IRequest) -> object:
        return StreamTicketAnswer(ticket=self.tickets.issue(), expires_in=int(self.tickets.lifetime))

    @api_route(app, "/api/stories", per_project=True)
    def stories(self, request: IRequest, p: ProjectBundle) -> object:
        # prd.json belongs to the project, not to a run: a known run_id answers the same.
        self._known_run(p, query_text(request, "run_id"))
        return p.live.stories_body()

    @api_route(app, "/api/logs", per_project=True)
    async def logs(self, request: IRequest, p: ProjectBundle) -> object:
        self._known_run(p, query_text(request, "run_id"))
        limit = query_int(request, "limit", 100, MAX_LOG_PAGE)
        offset = query_int(request, "offset", 0, 2**62)
        # A cold 50 MB progress.txt is indexed in steps; this page waits for it.
        await p.live.log_ready()
        return p.live.logs_body(offset, limit)

    @api_route(app, "/api/metrics", per_project=True)
    def metrics(self, request: IRequest, p: ProjectBundle) -> object:
        run_id = self._known_run(p, query_text(request, "run_id")) or p.live.newest_run()
        body = p.live.metrics_body(run_id) if run_id is not None else None
        if body is None:
            raise ApiError(404, "Metrics file not found")
        return body

    @api_route(app, "/api/history", per_project=True)
    async def history(self, request: IRequest, p: ProjectBundle) -> object:
        limit = query_int(request, "limit", 20, MAX_HISTORY_PAGE)
        offset = query_int(request, "offset", 0, 2**62)
        # A page of up to 1,000 rows not read yet is read in steps.
        await p.live.rows_ready(p.live.history_runs(offset, limit))
        return p.live.history_body(offset, limit)

    @api_route(app, "/api/runs", per_project=True)
    async def runs(self, request: IRequest, p: ProjectBundle) -> object:
        # Every row of a big project, read the first time in steps; this waits for them.
        await p.live.rows_ready()
        return p.live.runs_body()

    @api_route(app, "/api/runs/<string:run_id>", per_project=True)
    async def run(self, request: IRequest, p: ProjectBundle, run_id: str) -> object:
        self._known_run(p, run_id)
        body = p.live.run_body(run_id)
        commits: list[Any] = []
        window = self._run_window(p, run_id)
        if p.git is not None and window is not None:
            commits = await p.git.run_commits(*window)
        # The run's cached JSON object, with its commits as one more field.
        return body[:-1] + b',"commits":' + encode_json(commits) + b"}"

    @staticmethod
    def _run_window(p: ProjectBundle, run_id: str) -> tuple[float, float | None] | None:
        """When the run started and ended (None: still running), as seconds since the epoch."""
        start = run_id_start(run_id)
        if start is None:
            return None
        snapshot = p.live.snapshot()
        if run_id == snapshot.current_run and snapshot.summary.mtime is None:
            return start, None
        return start, start + max(p.project.run_row(run_id).elapsed_time_s, 0.0)

    @api_route(app, "/api/commits", per_project=True)
    async def commits(self, request: IRequest, p: ProjectBundle) -> object:
        limit = query_int(request, "limit", 20, MAX_COMMIT_PAGE)
        offset = query_int(request, "offset", 0, 2**62)
        since = query_text(request, "since")
        since_sha = since_time = None
        if since is not None and since.strip() != "":
            since = since.strip()
            if is_run_id(since):
                self._known_run(p, since)
                since_time = run_id_start(since)
            elif is_sha(since):
                since_sha = since
            else:
                raise ApiError(400, "Invalid value for 'since': expected a run id or a commit sha")
        if p.git is None:
            return {"commits": [], "total": 0, "limit": limit, "offset": offset, "git": NOT_READ}
        try:
            return await p.git.commits_body(offset, limit, since_sha, since_time)
        except LookupError:
            raise ApiError(404, f"Commit not found: {since_sha}") from None

    @api_route(app, "/api/commits/<string:sha>", per_project=True)
    async def commit(self, request: IRequest, p: ProjectBundle, sha: str) -> object:
        # Checked before the repository is touched: only hex object names reach libgit2.
        if not is_sha(sha):
            raise ApiError(400, "Invalid commit sha: expected 4 to 40 lower-case hex digits")
        body = await p.git.detail_body(sha) if p.git is not None else None
        if body is None:
            raise ApiError(404, f"Commit not found: {sha}")
        return body

    @api_route(app, "/api/notifications", per_project=True)
    def notification_list(self, request: IRequest, p: ProjectBundle) -> object:
        limit = query_int(request, "limit", 50, MAX_NOTIFICATION_PAGE)
        offset = query_int(request, "offset", 0, 2**62)
        center: NotificationCenter | None = p.notifications
        if center is None:
            items: list[bytes] = []
            total = 0
            settings: dict[str, Any] = {"kinds": [], "budget_usd": None, "stall_after": None}
        else:
            items, total = center.history.page_json(offset, limit)
            settings = center.settings()
        # The history keeps each item as its JSON: spliced in, not decoded and encoded again.
        rest = encode_json({"total": total, "limit": limit, "offset": offset, "settings": settings})
        return b'{"notifications":[' + b",".join(items) + b"]," + rest[1:]

    @api_route(app, "/metrics", auth="metrics", raw=True)
    def prometheus_metrics(self, request: IRequest) -> object:
        accept = request.getHeader(b"accept")
        scrape = self.meter.exposition(accept.decode("latin-1") if accept is not None else None)
        if scrape is None:
            raise ApiError(404, "Not found")
        content_type, body = scrape
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return body

    # -- errors: each leaves as JSON, registered once --------------------------

    @app.handle_errors(Denied)
    def _denied(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, Denied)
        self.meter.auth_failed(error.status)
        address = client_address(request)
        verdict = self.throttle.failure(address)
        if verdict.retry_after is not None:
            if verdict.started:
                self.log.warn("Throttling {address}: too many failed authentications", address=address)
            request.setHeader(b"Retry-After", str(verdict.retry_after).encode("ascii"))
            return json_body(request, {"error": TOO_MANY_FAILURES}, 429)
        if error.status == 401:
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="loopdash"')
        return json_body(request, {"error": error.message}, error.status)

    @app.handle_errors(ApiError)
    def _api_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, ApiError)
        return json_body(request, {"error": error.message}, error.status)

    @app.handle_errors(HTTPException)
    def _http_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, HTTPException)
        code = error.code or 500
        if isinstance(error, NotFound | RequestRedirect):
            # A redirect would carry a URL built from the request's Host: none leaves.
            code = 404
            message = "Not found"
        elif isinstance(error, MethodNotAllowed):
            allowed = sorted(set(error.valid_methods or ()) | {"OPTIONS"})
            request.setHeader(b"Allow", ", ".join(allowed).encode())
            message = "Method not allowed"
        else:
            message = error.description or error.name
        return json_body(request, {"error": message}, code)

    @app.handle_errors(Exception)
    def _bug(self, request: IRequest, failure: Failure) -> bytes | None:
        if failure.check(CancelledError):
            return None  # the client went away; nothing to answer
        self.log.failure(
            "Unhandled error answering {method} {path}",
            failure,
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("ascii", "replace"),
        )
        return json_body(request, {"error": "Internal server error"}, 500)

"""The resource in front of everything: the Host check, CORS, security headers, preflight.

One place for headers that every response carries, so no route can forget
them, and for the Host allow-list (421 before any route runs, see
:mod:`loopdash.server.hosts`). It wraps the Klein resource as a leaf, which
leaves Klein's own path handling untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from twisted.web.http import Request
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from loopdash.metrics.meter import NULL_METER, OTHER_ROUTE, Meter, method_label
from loopdash.server.encoding import encode_json
from loopdash.server.hosts import BadHost, HostPolicy, host_name

ALLOWED_METHODS = b"GET, HEAD, POST, OPTIONS"
#: What the web pages accept.
PAGE_METHODS = ("GET", "HEAD")
#: For API answers, which load nothing and may be framed by nobody (pages set their own).
CONTENT_SECURITY_POLICY = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

#: The methods routed at a path ([] when nothing is), as the API knows them.
MethodsFor = Callable[[bytes], Sequence[str]]
ALLOWED_HEADERS = b"Authorization, Content-Type, Last-Event-ID, Cache-Control"

#: Served by the API even when a pages resource takes every other non-/api/ path.
METRICS_PATH = b"/metrics"


#: The methods of the server as a whole, for ``OPTIONS *``.
SERVER_METHODS = ALLOWED_METHODS
#: When no policy is given: the loopback names only.
LOOPBACK_ONLY = HostPolicy.build("tcp:0:interface=127.0.0.1")


def no_route(method: bytes, path: bytes) -> str:
    return OTHER_ROUTE


def url_is_utf8(request: IRequest) -> bool:
    """Whether the host and the (unquoted) path decode as UTF-8, which Klein requires."""
    host = request.getHeader(b"host") or b""
    if request.uri.isascii() and b"%" not in request.uri and host.isascii():
        return True  # the usual request: nothing to decode (and no socket call for the host)
    try:
        request.getRequestHostname().decode("utf-8")
        for segment in (*request.prepath, *request.postpath):
            segment.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class CorsPolicy:
    """Which origins may read our answers. ``*`` (the default) allows all.

    Credentials (cookies) are never allowed: the API authenticates with a
    bearer header, and ``*`` with credentials is what browsers forbid anyway.
    """

    def __init__(self, origins: Sequence[str] = ("*",)) -> None:
        self.any_origin = "*" in origins or not origins
        self.origins = frozenset(o.rstrip("/") for o in origins if o != "*")

    def allow_origin(self, origin: bytes | None) -> bytes | None:
        if self.any_origin:
            return b"*"
        if origin is not None and origin.decode("latin-1").rstrip("/") in self.origins:
            return origin
        return None

    def apply(self, request: IRequest) -> None:
        allowed = self.allow_origin(request.getHeader(b"origin"))
        if not self.any_origin:
            request.setHeader(b"Vary", b"Origin")
        if allowed is not None:
            request.setHeader(b"Access-Control-Allow-Origin", allowed)


class FrontResource(Resource):
    """Adds CORS and security headers, answers CORS preflight, delegates the rest.

    ``/api/...`` and ``/metrics`` go to the API; every other path to ``pages``
    (the web dashboard) when there is one, else to the API too (which answers
    404 JSON). Every request is counted and timed here, once, under the route
    template ``route_of`` names for it.
    """

    isLeaf = True

    def __init__(
        self,
        api: IResource,
        cors: CorsPolicy,
        pages: IResource | None = None,
        meter: Meter = NULL_METER,
        route_of: Callable[[bytes, bytes], str] = no_route,
        timer: Callable[[], float] = time.perf_counter,
        methods_for: MethodsFor | None = None,
        page_route_of: Callable[[bytes], str | None] = lambda path: None,
        hosts: HostPolicy = LOOPBACK_ONLY,
    ) -> None:
        Resource.__init__(self)
        self._api = api
        self._pages = pages
        self._cors = cors
        self._meter = meter
        self._route_of = route_of
        self._timer = timer
        self._methods_for = methods_for
        self._page_route_of = page_route_of
        self._hosts = hosts

    def render(self, request: IRequest) -> bytes | int:
        if isinstance(request, Request):  # always, from a Site; not from a test's stand-in
            self._measure(request)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        refused = self._check_host(request)
        if refused is not None:
            return refused
        if request.path == b"*":
            return self._star(request)
        if request.path != METRICS_PATH:
            # A scraper is no browser: /metrics is never readable cross-origin.
            self._cors.apply(request)
        target = self._api
        is_page = self._is_page(request.path)
        if is_page:
            assert self._pages is not None
            target = self._pages
        if not is_page and not url_is_utf8(request):
            # Klein would answer this in text/html and log it as an error.
            request.setResponseCode(400)
            request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            return encode_json({"error": "Invalid URL: not UTF-8"})
        if request.method == b"OPTIONS":
            methods = self._methods(request.path, is_page)
            if methods is not None:
                return self._options(request, methods)
        result: bytes | int = target.render(request)
        return result

    def _check_host(self, request: IRequest) -> bytes | None:
        """The 400/421 answer for a Host this daemon does not answer to; None to go on.

        HTTP/1.1 needs exactly one Host (RFC 9112 §3.2); an HTTP/1.0 request
        without one is served (no browser sends one, so no rebinding page can).
        """
        values = request.requestHeaders.getRawHeaders(b"host")
        if not values:
            if getattr(request, "clientproto", None) == b"HTTP/1.0":
                return None
            return self._error(request, 400, "Missing Host header")
        if len(values) > 1:
            return self._error(request, 400, "More than one Host header")
        try:
            name = host_name(values[0])
        except BadHost:
            return self._error(request, 400, "Invalid Host header")
        if self._hosts.allows(name):
            return None
        return self._error(
            request,
            421,
            f"This daemon does not answer to the host {name[:100]!r}; "
            "if it is yours, start the daemon with --allowed-host for it",
        )

    @staticmethod
    def _error(request: IRequest, status: int, message: str) -> bytes:
        # Twisted knows no reason phrase for 421 (RFC 9110 §15.5.20).
        request.setResponseCode(status, b"Misdirected Request" if status == 421 else None)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return encode_json({"error": message})

    def _star(self, request: IRequest) -> bytes:
        """``OPTIONS *`` (RFC 9110 §9.3.7): the server's methods; any other method on ``*`` is 405."""
        request.setHeader(b"Allow", SERVER_METHODS if request.method == b"OPTIONS" else b"OPTIONS")
        if request.method == b"OPTIONS":
            request.setResponseCode(204)
            return b""
        return self._error(request, 405, "Method not allowed")

    def _is_page(self, path: bytes) -> bool:
        return self._pages is not None and not (path.startswith(b"/api/") or path == METRICS_PATH)

    def _measure(self, request: Request) -> None:
        started = self._timer()
        route: str | None = None
        if self._is_page(request.path):
            route = self._page_route_of(request.path)
        if route is None:
            route = self._route_of(request.method, request.path)
        method = method_label(request.method)

        def finished(_: object) -> None:
            # Also when the client went away (an event stream's usual end).
            self._meter.request_finished(route, method, request.code, self._timer() - started)

        request.notifyFinish().addBoth(finished)

    def _methods(self, path: bytes, is_page: bool) -> bytes | None:
        """``Allow`` for ``path``: exactly what is routed there; None when nothing is (a 404)."""
        if is_page:
            routed: Sequence[str] = PAGE_METHODS
        elif self._methods_for is None:
            return ALLOWED_METHODS
        else:
            routed = self._methods_for(path)
            if not routed:
                return None
        return ", ".join(sorted(set(routed) | {"OPTIONS"})).encode("ascii")

    def _options(self, request: IRequest, methods: bytes) -> bytes:
        if request.getHeader(b"access-control-request-method") is not None:
            request.setHeader(b"Access-Control-Allow-Methods", methods)
            request.setHeader(b"Access-Control-Allow-Headers", ALLOWED_HEADERS)
            request.setHeader(b"Access-Control-Max-Age", b"600")
        request.setHeader(b"Allow", methods)
        request.setResponseCode(204)
        return b""

"""What the daemon's parts count, as a small interface with a do-nothing default.

The hub, the watcher, the API and the front resource report to a
:class:`Meter` they are handed; :mod:`loopdash.metrics.prometheus` implements it. This
module imports no metrics library, so those parts stay free of one, and a part
built without a meter (a unit test, a tool) counts nothing.

Label values are bounded here, whatever a client sends: routes are the API's
route templates (unknown paths are ``other``), methods a fixed set.
"""

from __future__ import annotations

import os
from typing import Protocol

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map

#: The label of every path that is no route of the API.
OTHER_ROUTE = "other"

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: File kinds for parse failures, by file name (see loop-data.md).
FILE_KINDS = {"prd.json": "prd", "metrics.json": "metrics", "summary.json": "summary"}


class Meter(Protocol):
    """The daemon's counting points: one method per thing counted."""

    def request_finished(self, route: str, method: str, code: int, seconds: float) -> None:
        """An HTTP request ended (answered, or its client went away)."""

    def event_published(self, kind: str) -> None:
        """The hub published one stream event of type ``kind``."""

    def stream_dropped(self) -> None:
        """The hub dropped a stream whose client stopped reading."""

    def poll_finished(self, seconds: float) -> None:
        """The watcher finished one poll of the loop's files."""

    def file_unreadable(self, kind: str) -> None:
        """A loop file of ``kind`` could not be parsed (reported once per bad spell)."""

    def auth_failed(self, code: int) -> None:
        """A request's credentials were refused with ``code`` (401 or 403)."""

    def exposition(self, accept: str | None) -> tuple[str, bytes] | None:
        """The content type and body of a scrape, or None when nothing is exported."""


class NullMeter:
    """Counts nothing and exports nothing."""

    def request_finished(self, route: str, method: str, code: int, seconds: float) -> None:
        pass

    def event_published(self, kind: str) -> None:
        pass

    def stream_dropped(self) -> None:
        pass

    def poll_finished(self, seconds: float) -> None:
        pass

    def file_unreadable(self, kind: str) -> None:
        pass

    def auth_failed(self, code: int) -> None:
        pass

    def exposition(self, accept: str | None) -> tuple[str, bytes] | None:
        return None


NULL_METER: Meter = NullMeter()


def file_kind(path: str) -> str:
    """The kind of a loop file for the parse-failure label: prd, metrics, summary or other."""
    return FILE_KINDS.get(os.path.basename(path), "other")


def method_label(method: bytes) -> str:
    """The request method, or ``other`` for one no browser or tool sends."""
    name = method.decode("ascii", errors="replace").upper()
    return name if name in KNOWN_METHODS else "other"


class RouteLabels:
    """route_label, remembered: matching the URL map again costs a few µs a request.

    At most ``capacity`` paths are kept (run ids make paths unbounded); when
    full, the memory starts over.
    """

    def __init__(self, url_map: Map, capacity: int = 4096) -> None:
        self._url_map = url_map
        self._capacity = capacity
        self._labels: dict[tuple[bytes, bytes], str] = {}

    def __call__(self, method: bytes, path: bytes) -> str:
        key = (method, path)
        label = self._labels.get(key)
        if label is None:
            if len(self._labels) >= self._capacity:
                self._labels.clear()
            label = self._labels[key] = route_label(self._url_map, method, path)
        return label


def route_label(url_map: Map, method: bytes, path: bytes) -> str:
    """The route template that ``path`` matches (``/api/runs/<string:run_id>``), else ``other``.

    A path that exists for another method keeps its template, so a 405 is
    counted against its route.
    """
    adapter = url_map.bind("localhost")
    path_info = path.decode("utf-8", errors="replace")
    try:
        rule, _ = adapter.match(path_info, method=method_label(method), return_rule=True)
    except MethodNotAllowed as e:
        methods = sorted(e.valid_methods or ())
        if not methods:
            return OTHER_ROUTE
        try:
            rule, _ = adapter.match(path_info, method=methods[0], return_rule=True)
        except HTTPException:
            return OTHER_ROUTE
    except HTTPException:
        # Not found, or a redirect (a trailing slash): not a route of ours.
        return OTHER_ROUTE
    return str(rule.rule)

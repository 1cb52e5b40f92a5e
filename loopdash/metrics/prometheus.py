"""The daemon's Prometheus metrics: one registry per daemon, and the scrape.

:class:`PrometheusMeter` implements :class:`loopdash.metrics.meter.Meter` on its own
``CollectorRegistry`` (never the library's global one: tests start many
daemons in one process, and a daemon must export only its own numbers). It
holds the daemon's counters and histograms, the process and platform
collectors, and whatever custom collectors it is given (the loop's metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from loopdash import API_VERSION, __version__
from loopdash.metrics.meter import FILE_KINDS, OTHER_ROUTE

#: The event types the hub publishes (``connected`` is per stream, not published),
#: exported at 0 before the first one.
EVENT_TYPES = (
    "status_update",
    "story_updated",
    "iteration_added",
    "log_appended",
    "run_started",
    "run_finished",
    # Issue 16: more than MAX_ITEM_EVENTS changes of a kind in one poll.
    "stories_reset",
    "iterations_reset",
    "logs_reset",
)

#: A poll is a few stat calls, or a parse of a changed file.
POLL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PrometheusMeter:
    """Counts what the daemon does, and renders a scrape of everything registered."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Info("loopdash_build", "The daemon's version and API version.", registry=registry).info(
            {"version": __version__, "api_version": API_VERSION}
        )
        self.requests = Counter(
            "loopdash_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "code"),
            registry=registry,
        )
        self.request_seconds = Histogram(
            "loopdash_http_request_duration_seconds",
            "Time from the start of a request to its end (an event stream's whole life).",
            ("route",),
            registry=registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.streams_open = Gauge("loopdash_sse_streams_open", "Event streams open now.", registry=registry)
        self.events = Counter(
            "loopdash_sse_events_published",
            "Stream events published, by type.",
            ("type",),
            registry=registry,
        )
        self.dropped = Counter(
            "loopdash_sse_clients_dropped",
            "Streams ended because their client stopped reading.",
            registry=registry,
        )
        self.poll_seconds = Histogram(
            "loopdash_watcher_poll_duration_seconds",
            "Time one watcher poll of the loop's files takes.",
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.parse_failures = Counter(
            "loopdash_file_parse_failures",
            "Loop files that could not be parsed, by kind (prd, metrics, summary, other).",
            ("kind",),
            registry=registry,
        )
        self.auth_failures = Counter(
            "loopdash_auth_failures",
            "Requests refused for their credentials, by status code (401 missing, 403 wrong).",
            ("code",),
            registry=registry,
        )
        # Known label values start at 0, so a dashboard's rate() has a series to work on.
        for kind in EVENT_TYPES:
            self.events.labels(kind)
        for kind in (*FILE_KINDS.values(), OTHER_ROUTE):
            self.parse_failures.labels(kind)
        for code in ("401", "403"):
            self.auth_failures.labels(code)

    def register(self, collector: Collector) -> None:
        """Add a custom collector (the loop's metrics) to this daemon's registry."""
        self.registry.register(collector)

    def count_streams(self, open_streams: Callable[[], float]) -> None:
        """Read the number of open streams from ``open_streams`` at each scrape."""
        self.streams_open.set_function(open_streams)

    # -- Meter -------------------------------------------------------------------

    def request_finished(self, route: str, method: str, code: int, seconds: float) -> None:
        # labels() costs a lock and a dict lookup each time: keep the children.
        key = (route, method, code)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(code)),
                self.request_seconds.labels(route),
            )
        children[0].inc()
        children[1].observe(max(seconds, 0.0))

    def event_published(self, kind: str) -> None:
        self.events.labels(kind).inc()

    def stream_dropped(self) -> None:
        self.dropped.inc()

    def poll_finished(self, seconds: float) -> None:
        self.poll_seconds.observe(max(seconds, 0.0))

    def file_unreadable(self, kind: str) -> None:
        self.parse_failures.labels(kind).inc()

    def auth_failed(self, code: int) -> None:
        self.auth_failures.labels(str(code)).inc()

    def exposition(self, accept: str | None) -> tuple[str, bytes]:
        """The scrape, in the text format (or OpenMetrics when the scraper asks for it)."""
        encode, content_type = choose_encoder(accept or "")
        return content_type, encode(self.registry)

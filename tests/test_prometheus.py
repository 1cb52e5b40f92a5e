"""GET /metrics over a real socket, read with prometheus_client's own parser."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from loopdash.cli.sample import SAMPLE_STORIES, RealRun, write_in_place, write_prd
from loopdash.server.front import CorsPolicy, FrontResource
from tests.conftest import DaemonFactory
from tests.support import RunningDaemon, open_stream, settle

PROJECT = "prom-test-loop"
DASHBOARD_JSON = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "grafana", "loopdash.json"
)
FAST = {"poll_interval": 0.05, "keepalive": 60.0}

Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """One parsed scrape: every sample's value by its name and labels."""

    samples: dict[tuple[str, Labels], float]
    content_type: str

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), default)

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def parse_scrape(text: str, content_type: str = "") -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, content_type)


async def scrape(daemon: RunningDaemon, **kwargs: Any) -> Scrape:
    answer = await daemon.get("/metrics", **kwargs)
    assert answer.code == 200, answer.body
    return parse_scrape(answer.body.decode("utf-8"), answer.header("Content-Type") or "")


async def scrape_until(daemon: RunningDaemon, done: Callable[[Scrape], bool], tries: int = 100) -> Scrape:
    """Scrape every 50 ms until ``done`` holds (at most ``tries`` times)."""
    from twisted.internet import reactor

    result = await scrape(daemon)
    for _ in range(tries):
        if done(result):
            return result
        await settle(reactor, 0.05)
        result = await scrape(daemon)
    raise AssertionError(f"the scrape never got there; last: {sorted(result.samples)[:5]}...")


# -- a loop with known numbers ------------------------------------------------------


@dataclass
class KnownLoop:
    """A run in progress whose every number the test knows from what it wrote."""

    root: str
    run: RealRun
    stories: list[dict[str, Any]]

    @property
    def labels(self) -> dict[str, str]:
        # project: the plan's name; project_id: the daemon's id for the folder "known".
        return {"project": PROJECT, "project_id": "known", "run_id": self.run.run_id}

    def add_iteration(
        self, index: int, status: str, duration_ms: int, tokens_in: int, tokens_out: int
    ) -> None:
        story = self.stories[index]
        now = datetime.now(UTC)
        self.run.add_iteration(
            story["id"], story["title"], now, duration_ms, status, tokens_in=tokens_in, tokens_out=tokens_out
        )
        self.run.write_metrics(now)

    def pass_story(self, index: int) -> None:
        self.stories[index].update(passes=True, notes="done")
        write_prd(self.root, self.stories, project=PROJECT)


@pytest.fixture
def known(tmp_path: Any) -> KnownLoop:
    root = os.path.join(str(tmp_path), "known")
    os.makedirs(root)
    stories = [dict(s, passes=False, notes="") for s in SAMPLE_STORIES]
    for story in stories[:3]:
        story.update(passes=True)
    write_prd(root, stories, project=PROJECT)
    write_in_place(os.path.join(root, "progress.txt"), "# progress\n\n")
    run = RealRun(root, datetime.now(UTC) - timedelta(minutes=20))
    run.start()
    loop = KnownLoop(root, run, stories)
    loop.add_iteration(0, "complete", 45_000, 8_000, 2_000)
    loop.add_iteration(1, "failed", 200_000, 12_000, 3_000)
    loop.add_iteration(1, "complete", 700_000, 20_000, 6_000)
    loop.add_iteration(2, "skipped", 5_000, 1_000, 100)
    return loop


def expected_histogram(scrape: Scrape, name: str, values: list[float], labels: dict[str, str]) -> None:
    """Every bucket of ``name`` counts the values at or below its bound; count and sum agree."""
    buckets = {
        dict(key)["le"]: v
        for key, v in scrape.series(name + "_bucket").items()
        if {k: w for k, w in key if k != "le"} == labels
    }
    assert "+Inf" in buckets and len(buckets) > 2
    for le, count in buckets.items():
        bound = float("inf") if le == "+Inf" else float(le)
        assert count == sum(1 for v in values if v <= bound), le
    assert scrape.value(name + "_count", **labels) == len(values)
    assert scrape.value(name + "_sum", **labels) == pytest.approx(sum(values))


# -- the loop's numbers ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_loop_metrics_match_the_files_of_the_loop(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    daemon = await daemon_factory(known.root, **FAST)
    result = await scrape(daemon)
    labels = known.labels
    iterations = known.run.iterations

    assert result.value("loopdash_loop_stories", **labels) == len(known.stories) == 8
    assert result.value("loopdash_loop_stories_completed", **labels) == 3
    assert result.value("loopdash_loop_progress_ratio", **labels) == pytest.approx(3 / 8)
    assert result.value("loopdash_loop_running", **labels) == 1
    assert result.value("loopdash_loop_runs", **labels) == 1
    assert result.value("loopdash_loop_cost_usd", **labels) == pytest.approx(
        sum(i["cost_usd"] for i in iterations)
    )
    assert result.value("loopdash_loop_tokens", direction="in", **labels) == sum(
        i["tokens_in"] for i in iterations
    )
    assert result.value("loopdash_loop_tokens", direction="out", **labels) == sum(
        i["tokens_out"] for i in iterations
    )
    assert result.value("loopdash_loop_iterations", outcome="success", **labels) == 2
    assert result.value("loopdash_loop_iterations", outcome="failure", **labels) == 1
    assert result.value("loopdash_loop_iterations", outcome="other", **labels) == 1
    assert result.value("loopdash_loop_last_iteration_duration_seconds", **labels) == 5.0
    since = result.value("loopdash_loop_seconds_since_activity", **labels)
    assert 0 <= since < 120  # the files were written moments ago
    expected_histogram(
        result,
        "loopdash_loop_iteration_duration_seconds",
        [i["duration_ms"] / 1000 for i in iterations],
        labels,
    )
    expected_histogram(
        result, "loopdash_loop_iteration_cost_usd", [i["cost_usd"] for i in iterations], labels
    )

    # The same numbers as the REST API answers.
    status = (await daemon.get("/api/status")).json()
    assert result.value("loopdash_loop_elapsed_seconds", **labels) == pytest.approx(
        status["elapsed_time"], abs=2
    )
    assert result.value("loopdash_loop_cost_usd", **labels) == status["cost_so_far"]


@pytest_twisted.ensureDeferred
async def test_loop_metrics_follow_the_files_and_count_the_events_published(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    daemon = await daemon_factory(known.root, **FAST)
    labels = known.labels
    before = await scrape(daemon)
    cost_before = before.value("loopdash_loop_cost_usd", **labels)

    known.add_iteration(3, "complete", 90_000, 30_000, 9_000)
    known.pass_story(3)

    def caught_up(s: Scrape) -> bool:
        return (
            s.get("loopdash_loop_stories_completed", **labels) == 4
            and s.get("loopdash_loop_iterations", outcome="success", **labels) == 3
            and s.get("loopdash_sse_events_published_total", type="iteration_added") >= 1
            and s.get("loopdash_sse_events_published_total", type="story_updated") >= 1
        )

    after = await scrape_until(daemon, caught_up)
    assert after.value("loopdash_loop_progress_ratio", **labels) == pytest.approx(4 / 8)
    assert after.value("loopdash_loop_cost_usd", **labels) == pytest.approx(
        cost_before + known.run.iterations[-1]["cost_usd"]
    )
    assert after.value("loopdash_loop_last_iteration_duration_seconds", **labels) == 90.0
    assert after.value("loopdash_loop_iteration_duration_seconds_count", **labels) == 5
    # One iteration and one story changed: one event of each.
    assert after.value("loopdash_sse_events_published_total", type="iteration_added") == 1
    assert after.value("loopdash_sse_events_published_total", type="story_updated") == 1
    assert before.value("loopdash_sse_events_published_total", type="iteration_added") == 0
    assert after.value("loopdash_watcher_poll_duration_seconds_count") > before.value(
        "loopdash_watcher_poll_duration_seconds_count"
    )


@pytest_twisted.ensureDeferred
async def test_a_new_run_is_a_new_series_labelled_with_its_id(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    daemon = await daemon_factory(known.root, **FAST)
    newer = RealRun(known.root, known.run.started_at + timedelta(minutes=10))
    newer.start()
    newer.write_metrics(newer.started_at)
    labels = {"project": PROJECT, "project_id": "known", "run_id": newer.run_id}
    result = await scrape_until(daemon, lambda s: s.get("loopdash_loop_runs", -1, **labels) == 2)
    assert result.value("loopdash_loop_iterations", outcome="success", **labels) == 0
    assert result.value("loopdash_loop_iteration_duration_seconds_count", **labels) == 0
    # One run at a time: the old run's series are gone.
    assert all(dict(key)["run_id"] == newer.run_id for key in result.series("loopdash_loop_stories"))


@pytest_twisted.ensureDeferred
async def test_an_empty_directory_exports_zeros_not_an_error(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    daemon = await daemon_factory(empty_root)
    result = await scrape(daemon)
    labels = {"project": "", "project_id": "empty", "run_id": ""}
    assert result.value("loopdash_loop_stories", **labels) == 0
    assert result.value("loopdash_loop_running", **labels) == 0
    assert result.value("loopdash_loop_iteration_duration_seconds_count", **labels) == 0
    assert ("loopdash_loop_last_iteration_duration_seconds", frozenset(labels.items())) not in result.samples


# -- the daemon's own numbers ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_requests_are_counted_by_route_template_method_and_code(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    daemon = await daemon_factory(known.root, **FAST)
    before = await scrape(daemon)
    run_route = "/api/runs/<string:run_id>"
    for _ in range(3):
        assert (await daemon.get(f"/api/runs/{known.run.run_id}")).code == 200
    assert (await daemon.get("/api/runs/19990101_000000")).code == 404
    assert (await daemon.get("/no/such/page")).code == 404
    assert (await daemon.get("/another/unknown/path")).code == 404
    assert (await daemon.request("POST", "/api/status")).code == 405
    after = await scrape(daemon)

    def delta(**labels: str) -> float:
        return after.get("loopdash_http_requests_total", **labels) - before.get(
            "loopdash_http_requests_total", **labels
        )

    assert delta(route=run_route, method="GET", code="200") == 3
    assert delta(route=run_route, method="GET", code="404") == 1
    # Unknown paths share one label: the path a client invents never becomes a series.
    assert delta(route="other", method="GET", code="404") == 2
    assert delta(route="/api/status", method="POST", code="405") == 1
    routes = {dict(key)["route"] for key in after.series("loopdash_http_requests_total")}
    assert not any("19990101" in r or "no/such" in r for r in routes)
    # The scrape before this one was counted (once it ended) under /metrics.
    assert after.value("loopdash_http_requests_total", route="/metrics", method="GET", code="200") >= 1
    assert after.value("loopdash_http_request_duration_seconds_count", route=run_route) == 4
    assert after.value("loopdash_http_request_duration_seconds_bucket", route=run_route, le="+Inf") == 4


@pytest_twisted.ensureDeferred
async def test_the_open_streams_gauge_follows_an_open_stream(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    daemon = await daemon_factory(known.root, **FAST)
    assert (await scrape(daemon)).value("loopdash_sse_streams_open") == 0
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    assert (await scrape(daemon)).value("loopdash_sse_streams_open") == 1
    stream.close()
    closed = await scrape_until(daemon, lambda s: s.value("loopdash_sse_streams_open") == 0)
    # The ended stream is counted as a request of its route once it is over.
    assert closed.value("loopdash_http_requests_total", route="/api/stream", method="GET", code="200") == 1


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_is_counted_as_dropped(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    daemon = await daemon_factory(known.root, poll_interval=0.05, keepalive=0.05)
    hub = daemon.dashboard.hub
    hub.stuck_after = 0.1
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    (subscriber,) = hub.subscribers
    subscriber.pauseProducing()  # what the transport does when the client's buffer stays full
    result = await scrape_until(daemon, lambda s: s.value("loopdash_sse_clients_dropped_total") == 1)
    assert result.value("loopdash_sse_streams_open") == 0
    stream.close()


@pytest_twisted.ensureDeferred
async def test_auth_failures_are_counted_by_code(daemon_factory: DaemonFactory, known: KnownLoop) -> None:
    daemon = await daemon_factory(known.root, **FAST)
    before = await scrape(daemon)
    assert (await daemon.get("/api/status", authenticated=False)).code == 401
    assert (await daemon.get("/api/status", token="wrong")).code == 403
    assert (await daemon.get("/api/status", token="wrong")).code == 403
    assert (await daemon.get("/api/stream?ticket=made-up", authenticated=False)).code == 403
    after = await scrape(daemon)
    for code, count in (("401", 1), ("403", 3)):
        assert (
            after.value("loopdash_auth_failures_total", code=code)
            - before.value("loopdash_auth_failures_total", code=code)
            == count
        )


@pytest_twisted.ensureDeferred
async def test_files_that_do_not_parse_are_counted_by_kind(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    # A file that never parsed is reported at once (one that did gets a grace period).
    write_in_place(os.path.join(known.root, "prd.json"), '{"userStories": [')
    daemon = await daemon_factory(known.root, **FAST)
    result = await scrape_until(
        daemon, lambda s: s.value("loopdash_file_parse_failures_total", kind="prd") >= 1
    )
    # Reported once per bad spell, not once per poll.
    await settle_polls(daemon, 5)
    again = await scrape(daemon)
    assert again.value("loopdash_file_parse_failures_total", kind="prd") == 1
    assert result.value("loopdash_file_parse_failures_total", kind="metrics") == 0


async def settle_polls(daemon: RunningDaemon, count: int) -> None:
    from twisted.internet import reactor

    target = daemon.dashboard.watcher.polls + count
    for _ in range(200):
        if daemon.dashboard.watcher.polls >= target:
            return
        await settle(reactor, 0.02)
    raise AssertionError("the watcher did not poll")


@pytest_twisted.ensureDeferred
async def test_process_and_build_metrics_are_exported(daemon_factory: DaemonFactory, empty_root: str) -> None:
    daemon = await daemon_factory(empty_root)
    result = await scrape(daemon)
    assert result.value("process_resident_memory_bytes") > 0
    assert result.value("process_open_fds") > 0
    assert result.value("process_start_time_seconds") > 0
    assert result.value("loopdash_build_info", version=_version(), api_version="1.0.0") == 1
    assert any(name.startswith("python_gc_") for name in result.names)


def _version() -> str:
    from loopdash import __version__

    return __version__


@pytest_twisted.ensureDeferred
async def test_each_daemon_exports_only_its_own_numbers(
    daemon_factory: DaemonFactory, known: KnownLoop, empty_root: str
) -> None:
    busy = await daemon_factory(known.root)
    quiet = await daemon_factory(empty_root)
    for _ in range(5):
        await busy.get("/api/status")
    busy_scrape = await scrape(busy)
    quiet_scrape = await scrape(quiet)
    assert (
        busy_scrape.value("loopdash_http_requests_total", route="/api/status", method="GET", code="200") == 5
    )
    assert (
        quiet_scrape.get("loopdash_http_requests_total", -1, route="/api/status", method="GET", code="200")
        == -1
    )
    assert set(quiet_scrape.series("loopdash_loop_stories")) == {
        frozenset({("project", ""), ("project_id", "empty"), ("run_id", "")})
    }


# -- the endpoint: auth, formats, routing ------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_metrics_without_a_token_is_401_json_and_with_a_wrong_one_403(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    daemon = await daemon_factory(empty_root)
    missing = await daemon.get("/metrics", authenticated=False)
    assert missing.code == 401
    assert missing.header("Content-Type") == "application/json; charset=utf-8"
    assert missing.json() == {"error": "Missing or invalid Authorization header"}
    assert missing.header("WWW-Authenticate") == 'Bearer realm="loopdash"'
    wrong = await daemon.get("/metrics", token="not-the-token")
    assert wrong.code == 403
    assert wrong.json() == {"error": "Invalid authentication token"}
    good = await daemon.get("/metrics")
    assert good.code == 200
    assert good.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    assert good.header("Cache-Control") == "no-store"


@pytest_twisted.ensureDeferred
async def test_metrics_public_serves_metrics_without_a_token_and_nothing_else(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    daemon = await daemon_factory(known.root, metrics_public=True)
    anonymous = await daemon.get("/metrics", authenticated=False)
    assert anonymous.code == 200
    result = parse_scrape(anonymous.body.decode())
    assert result.value("loopdash_loop_stories", **known.labels) == 8
    # A scraper configured with a stale token is not locked out of a public endpoint.
    assert (await daemon.get("/metrics", token="stale")).code == 200
    # The API itself stays behind the token.
    assert (await daemon.get("/api/status", authenticated=False)).code == 401


@pytest_twisted.ensureDeferred
async def test_an_openmetrics_scraper_gets_openmetrics(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    daemon = await daemon_factory(empty_root)
    answer = await daemon.get(
        "/metrics", headers={b"Accept": [b"application/openmetrics-text; version=1.0.0; charset=utf-8"]}
    )
    assert answer.code == 200
    assert (answer.header("Content-Type") or "").startswith("application/openmetrics-text; version=1.0.0")
    assert answer.body.endswith(b"# EOF\n")


class _Page(Resource):
    """A stand-in for the web pages: answers every path it is given."""

    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        return b"<h1>the page</h1>"


@pytest_twisted.ensureDeferred
async def test_metrics_reach_the_api_when_a_pages_resource_takes_other_paths(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    daemon = await daemon_factory(empty_root)
    front = FrontResource(daemon.dashboard.api.resource(), CorsPolicy(), pages=_Page())
    client = StubTreq(front)
    page = await client.get("http://localhost/")
    assert await page.content() == b"<h1>the page</h1>"
    scraped = await client.get("http://localhost/metrics", headers=daemon.auth())
    assert scraped.code == 200
    assert scraped.headers.getRawHeaders("Content-Type") == ["text/plain; version=0.0.4; charset=utf-8"]
    exported = parse_scrape((await scraped.content()).decode())
    assert exported.value("loopdash_loop_stories", project="", project_id="empty", run_id="") == 0
    refused = await client.get("http://localhost/metrics")
    assert refused.code == 401
    assert json.loads(await refused.content()) == {"error": "Missing or invalid Authorization header"}


@pytest_twisted.ensureDeferred
async def test_web_page_requests_are_counted_under_their_own_routes(
    daemon_factory: DaemonFactory, empty_root: str
) -> None:
    daemon = await daemon_factory(empty_root)
    webui = daemon.dashboard.site.resource._pages.webui  # type: ignore[attr-defined]
    asset = f"/assets/{webui.version}/{sorted(webui.assets)[0]}"
    before = await scrape(daemon)
    assert (await daemon.get("/", authenticated=False)).code == 200
    assert (await daemon.get("/index.html", authenticated=False)).code == 200
    assert (await daemon.get(asset, authenticated=False)).code == 200
    assert (await daemon.get("/assets/0000/app.js", authenticated=False)).code == 404  # an old page's asset
    assert (await daemon.get("/no/such/page", authenticated=False)).code == 404
    after = await scrape(daemon)

    def delta(**labels: str) -> float:
        return after.get("loopdash_http_requests_total", **labels) - before.get(
            "loopdash_http_requests_total", **labels
        )

    assert delta(route="/", method="GET", code="200") == 2
    assert delta(route="/assets/<version>/<name>", method="GET", code="200") == 1
    assert delta(route="other", method="GET", code="404") == 2


# -- the Grafana dashboard ----------------------------------------------------------------

METRIC_NAME = re.compile(r"\b(?:loopdash|process|python)_[a-zA-Z0-9_]+")


def dashboard_queries(node: Any) -> Iterator[str]:
    """Every PromQL expression in a Grafana dashboard: panel targets and template variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield value["query"]
            elif key == "query" and isinstance(value, str) and "(" in value:
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


@pytest_twisted.ensureDeferred
async def test_every_metric_the_grafana_dashboard_queries_exists_in_a_real_scrape(
    daemon_factory: DaemonFactory, known: KnownLoop
) -> None:
    with open(DASHBOARD_JSON, encoding="utf-8") as f:
        dashboard = json.load(f)
    queries = list(dashboard_queries(dashboard))
    assert len(queries) >= 10
    daemon = await daemon_factory(known.root, **FAST)
    # Traffic, so that series labelled by route exist.
    await daemon.get("/api/status")
    await daemon.get("/api/status", authenticated=False)
    stream = await open_stream(daemon)
    await stream.next_of_type("status_update")
    names = (await scrape(daemon)).names
    stream.close()
    used: set[str] = set()
    for query in queries:
        found = set(METRIC_NAME.findall(query))
        assert found, f"a query with no metric of ours: {query}"
        used |= found
    missing = sorted(used - names)
    assert missing == []
    # The dashboard covers what the issue asks for.
    for name in (
        "loopdash_loop_progress_ratio",
        "loopdash_loop_cost_usd",
        "loopdash_loop_tokens",
        "loopdash_loop_iteration_duration_seconds_bucket",
        "loopdash_http_requests_total",
        "loopdash_sse_streams_open",
    ):
        assert name in used, name


# -- pure helpers and the option -----------------------------------------------------------


def test_route_labels_are_route_templates_and_unknown_paths_are_other() -> None:
    from loopdash.metrics.meter import route_label
    from loopdash.server.api import DashboardAPI

    url_map = DashboardAPI.app.url_map
    assert route_label(url_map, b"GET", b"/api/runs/20260101_120000") == "/api/runs/<string:run_id>"
    assert route_label(url_map, b"GET", b"/api/status") == "/api/status"
    assert route_label(url_map, b"GET", b"/metrics") == "/metrics"
    # A path that exists for another method keeps its route (the 405 is counted there).
    assert route_label(url_map, b"DELETE", b"/api/stream/ticket") == "/api/stream/ticket"
    for path in (b"/", b"/api/nope", b"/api/status/", b"/\xff\xfe", b"/api/runs/a/b"):
        assert route_label(url_map, b"GET", path) == "other"


def test_method_and_file_kind_labels_are_bounded() -> None:
    from loopdash.metrics.meter import file_kind, method_label

    assert method_label(b"get") == "GET"
    assert method_label(b"PROPFIND") == "other"
    assert method_label(b"\xff") == "other"
    assert file_kind("/p/prd.json") == "prd"
    assert file_kind("/p/.claude-loop/runs/20260101_120000/metrics.json") == "metrics"
    assert file_kind("/p/.claude-loop/runs/20260101_120000/summary.json") == "summary"
    assert file_kind("/p/notes.json") == "other"


def test_histogram_buckets_are_cumulative_and_include_their_bound() -> None:
    from loopdash.metrics.loop import histogram_buckets

    assert histogram_buckets([60.0, 5.0, 60.0, 4000.0], (30.0, 60.0, 120.0)) == [
        ("30.0", 1.0),
        ("60.0", 3.0),
        ("120.0", 3.0),
        ("+Inf", 4.0),
    ]
    assert histogram_buckets([], (1.0,)) == [("1.0", 0.0), ("+Inf", 0.0)]


def test_the_metrics_public_option_reaches_the_config(tmp_path: Any) -> None:
    from loopdash.server.tap import Options

    default = Options()
    default.parseOptions(["--root", str(tmp_path)])
    assert default.config().metrics_public is False
    public = Options()
    public.parseOptions(["--root", str(tmp_path), "--metrics-public"])
    assert public.config().metrics_public is True


def test_twistd_metrics_public_serves_metrics_to_a_scraper_without_the_token(tmp_path: Any) -> None:
    """The real ``twistd -n loopdash --metrics-public`` in a subprocess (no server in this process)."""
    import signal
    import subprocess
    import urllib.error
    import urllib.request

    from loopdash.cli.sample import create_sample_project
    from tests.processes import STOP_TIMEOUT, TWISTD, free_port
    from tests.test_plugin_e2e import wait_for_health

    root = os.path.join(str(tmp_path), "project")
    create_sample_project(root)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", "loopdash", "--root", root, "--port", str(port), "--metrics-public"],
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_health(process, base)
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            assert response.status == 200
            result = parse_scrape(response.read().decode())
        (stories,) = result.series("loopdash_loop_stories").values()
        assert stories == len(SAMPLE_STORIES)
        assert result.value("process_open_fds") > 0
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/api/status", timeout=5)
        assert refused.value.code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT)


def test_projects_that_share_a_plan_name_keep_their_own_series(tmp_path: Any) -> None:
    # A multi-project daemon: two worktrees of one repository carry the same plan
    # name; project_id keeps their series apart, and a project dropped from the
    # daemon is dropped from the scrape (and from the collector's memory).
    from prometheus_client import CollectorRegistry, generate_latest
    from twisted.internet.task import Clock

    from loopdash.loop.project import Project
    from loopdash.metrics.loop import LoopCollector, LoopSource
    from loopdash.server.live import LiveProject

    clock = Clock()
    clock.advance(datetime.now(UTC).timestamp())
    sources = []
    for name, done in (("a", 1), ("b", 3)):
        root = os.path.join(str(tmp_path), name)
        os.makedirs(root)
        write_prd(root, [dict(s, passes=i < done) for i, s in enumerate(SAMPLE_STORIES)], project=PROJECT)
        sources.append(
            LoopSource(name, LiveProject(Project(root), clock, 900.0), 5.0 if name == "b" else None)
        )
    collector = LoopCollector(lambda: tuple(sources), clock, 900.0)
    registry = CollectorRegistry()
    registry.register(collector)
    scraped = parse_scrape(generate_latest(registry).decode())
    assert scraped.value("loopdash_loop_stories_completed", project=PROJECT, project_id="a", run_id="") == 1
    assert scraped.value("loopdash_loop_stories_completed", project=PROJECT, project_id="b", run_id="") == 3
    assert set(scraped.series("loopdash_loop_budget_usd")) == {
        frozenset({("project", PROJECT), ("project_id", "b"), ("run_id", "")})
    }
    del sources[0]
    scraped = parse_scrape(generate_latest(registry).decode())
    assert [dict(key)["project_id"] for key in scraped.series("loopdash_loop_stories")] == ["b"]
    assert set(collector._figures) == {"b"}

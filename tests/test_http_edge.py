"""The HTTP edge against a hostile web page and odd clients, over real sockets.

The Host allow-list (DNS rebinding), no redirects, JSON refusals for oversize
heads, the request deadline and the connection cap, credentials in the query
string and how they are logged, and the odd request forms (``OPTIONS *``,
absolute-form targets). Raw bytes go over a real socket where treq would
normalise what we mean to send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.logger import ILogObserver, globalLogPublisher
from zope.interface import provider

from loopdash.server.accesslog import redact_uri
from loopdash.server.hosts import BadHost, HostPolicy, host_name, listen_interface
from tests.conftest import DaemonFactory
from tests.support import RunningDaemon, open_stream, settle
from tests.test_hostile_clients import body_of, connect, exchange, status_of


def port_of(daemon: RunningDaemon) -> int:
    return int(daemon.url.rsplit(":", 1)[1])


def http10(target: bytes, *headers: bytes) -> bytes:
    return b"\r\n".join([b"GET " + target + b" HTTP/1.0", *headers]) + b"\r\n\r\n"


def headers_of(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in head)}


def assert_json_error(answer: bytes, status: int) -> dict[str, Any]:
    assert status_of(answer) == status, answer[:400]
    headers = headers_of(answer)
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in headers["content-security-policy"]
    body = json.loads(body_of(answer))
    assert set(body) == {"error"} and body["error"]
    return headers


@pytest.fixture
def access_lines() -> Iterator[list[dict[str, Any]]]:
    """The access log's events while the test runs."""
    events: list[dict[str, Any]] = []

    @provider(ILogObserver)
    def keep(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "loopdash.server.accesslog.AccessLogSite":
            events.append(event)

    globalLogPublisher.addObserver(keep)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(keep)


# -- 1. the Host allow-list ---------------------------------------------------------------


@pytest.mark.parametrize("path", [b"/api/health", b"/api/openapi.json", b"/", b"/metrics", b"/api/status"])
@pytest.mark.parametrize(
    "host", [b"evil.example", b"evil.example:{port}", b"127.0.0.1.evil.example", b"localhost.evil.example"]
)
@pytest_twisted.ensureDeferred
async def test_a_host_not_on_the_list_is_421_json_before_any_route(
    daemon_factory: DaemonFactory, sample_root: str, path: bytes, host: bytes
) -> None:
    daemon = await daemon_factory(sample_root, metrics_public=True)
    host = host.replace(b"{port}", str(port_of(daemon)).encode())
    answer = await exchange(daemon, http10(path, b"Host: " + host, b"Origin: http://evil.example"))
    assert answer.startswith(b"HTTP/1.0 421 Misdirected Request\r\n")
    headers = assert_json_error(answer, 421)
    assert "access-control-allow-origin" not in headers
    assert "location" not in headers
    name = host.split(b":")[0].decode()
    assert json.loads(body_of(answer))["error"] == (
        f"This daemon does not answer to the host {name!r}; if it is yours, start the daemon with --allowed-host for it"
    )


@pytest.mark.parametrize(
    "host",
    [b"localhost", b"localhost:{port}", b"LOCALHOST.:{port}", b"127.0.0.1:{port}", b"[::1]:{port}", b"[::1]"],
)
@pytest_twisted.ensureDeferred
async def test_the_loopback_names_are_answered(sample_daemon: RunningDaemon, host: bytes) -> None:
    host = host.replace(b"{port}", str(port_of(sample_daemon)).encode())
    answer = await exchange(sample_daemon, http10(b"/api/health", b"Host: " + host))
    assert status_of(answer) == 200
    assert json.loads(body_of(answer))["status"] == "ok"


@pytest_twisted.ensureDeferred
async def test_allowed_host_adds_a_name_and_only_that_name(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    daemon = await daemon_factory(sample_root, allowed_hosts=("Dash.Example", "[fd00::5]"))
    for host, expected in [
        (b"dash.example", 200),
        (b"dash.example:443", 200),
        (b"[fd00::5]:8080", 200),
        (b"other.example", 421),
        (b"fd00::5", 400),  # an IPv6 address needs its brackets
    ]:
        answer = await exchange(daemon, http10(b"/api/health", b"Host: " + host))
        assert status_of(answer) == expected, host


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        pytest.param(
            b"GET /api/health HTTP/1.1\r\nConnection: close\r\n\r\n", 400, id="HTTP/1.1 without Host"
        ),
        pytest.param(
            b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            400,
            id="two Hosts",
        ),
        pytest.param(http10(b"/api/health", b"Host: [::1"), 400, id="unclosed bracket"),
        pytest.param(http10(b"/api/health", b"Host: user@127.0.0.1"), 400, id="userinfo"),
        pytest.param(http10(b"/api/health", b"Host: 127.0.0.1:80:80"), 400, id="two ports"),
        pytest.param(http10(b"/api/health", b"Host: 127.0.0.1:http"), 400, id="named port"),
        pytest.param(http10(b"/api/health"), 200, id="HTTP/1.0 without Host"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_missing_or_malformed_host_is_400_json(
    sample_daemon: RunningDaemon, request_bytes: bytes, expected: int
) -> None:
    answer = await exchange(sample_daemon, request_bytes)
    if expected == 200:
        assert status_of(answer) == 200
    else:
        assert_json_error(answer, expected)


@pytest_twisted.ensureDeferred
async def test_metrics_never_carry_cors_headers(daemon_factory: DaemonFactory, sample_root: str) -> None:
    daemon = await daemon_factory(sample_root, metrics_public=True)
    origin = {b"Origin": [b"http://127.0.0.1:9999"]}
    metrics = await daemon.get("/metrics", authenticated=False, headers=origin)
    assert metrics.code == 200 and b"loopdash_" in metrics.body
    assert metrics.header("Access-Control-Allow-Origin") is None
    preflight = await daemon.request(
        "OPTIONS",
        "/metrics",
        authenticated=False,
        headers={**origin, b"Access-Control-Request-Method": [b"GET"]},
    )
    assert preflight.header("Access-Control-Allow-Origin") is None
    # The API itself keeps its CORS answer.
    health = await daemon.get("/api/health", authenticated=False, headers=origin)
    assert health.header("Access-Control-Allow-Origin") == "*"


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (b"localhost", "localhost"),
        (b"LocalHost.:8080", "localhost"),
        (b"[::1]:80", "::1"),
        (b"[::FFFF:127.0.0.1]", "::ffff:127.0.0.1"),
        (b"127.0.0.1:", "127.0.0.1"),
        (b" 127.0.0.1 ", "127.0.0.1"),
    ],
)
def test_host_names_are_read_as_rfc_3986_says(value: bytes, name: str) -> None:
    assert host_name(value) == name


@pytest.mark.parametrize(
    "value",
    [b"", b":80", b"[::1", b"[evil]", b"::1", b"a b", b"x@127.0.0.1", b"h:99999999", b"\xc3\xa9.example"],
)
def test_malformed_host_values_are_refused(value: bytes) -> None:
    with pytest.raises(BadHost):
        host_name(value)


@pytest.mark.parametrize(
    ("listen", "interface"),
    [
        ("tcp:8080:interface=127.0.0.1", "127.0.0.1"),
        ("tcp:port=8080:interface=\\:\\:1", "::1"),
        ("tcp:8080", ""),
        ("tcp6:8080", "::"),
        ("ssl:8443:privateKey=k.pem:interface=192.168.1.5:certKey=c.pem", "192.168.1.5"),
        ("unix:/run/loopdash.sock", None),
    ],
)
def test_the_listen_interface_is_read_from_the_endpoint_string(listen: str, interface: str | None) -> None:
    assert listen_interface(listen) == interface


def test_the_default_list_follows_the_listen_address() -> None:
    machine = ("build-box", "build-box.local")
    loopback = HostPolicy.build("tcp:8080:interface=127.0.0.1", names_of_machine=machine)
    assert {n for n in ("localhost", "127.0.0.1", "::1") if loopback.allows(n)} == {
        "localhost",
        "127.0.0.1",
        "::1",
    }
    assert not loopback.allows("build-box") and not loopback.allows("192.168.1.5")
    lan = HostPolicy.build("tcp:8080:interface=192.168.1.5", names_of_machine=machine)
    assert lan.allows("192.168.1.5") and lan.allows("build-box.local")
    assert not lan.allows("10.0.0.7") and not lan.allows("evil.example")
    everywhere = HostPolicy.build("tcp:8080:interface=0.0.0.0", names_of_machine=machine)
    # An address cannot be rebound: any address reaching a wildcard listener is its own origin.
    assert everywhere.allows("10.0.0.7") and everywhere.allows("fd00::7") and everywhere.allows("build-box")
    assert not everywhere.allows("evil.example")
    assert HostPolicy.build("tcp:8080:interface=127.0.0.1", ["*"]).allows("evil.example")


# -- 2. no redirects: a path that is not exactly a route is 404 -----------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/api/runs/%2Fetc",
        b"/api/runs//etc",
        b"/api//health",
        b"/api/health/",
        b"/api/status/",
        b"/api/runs/20260101_000000/",
        b"/api/runs/",
        b"/api/stream/",
    ],
)
@pytest.mark.parametrize("host", [b"127.0.0.1", b"[::1]"])
@pytest_twisted.ensureDeferred
async def test_a_path_that_is_not_exactly_a_route_is_404_json_never_a_redirect(
    sample_daemon: RunningDaemon, target: bytes, host: bytes
) -> None:
    token = sample_daemon.token.encode()
    answer = await exchange(
        sample_daemon, http10(target, b"Host: " + host, b"Authorization: Bearer " + token)
    )
    headers = assert_json_error(answer, 404)
    assert "location" not in headers
    assert json.loads(body_of(answer)) == {"error": "Not found"}


# -- 3. oversize heads are answered, then the connection closed -----------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        pytest.param(
            http10(b"/api/status?q=" + b"a" * 20_000), 414, "Request line too long", id="20 KB line"
        ),
        pytest.param(
            http10(b"/api/status?q=" + b"a" * 16_350, b"Host: 127.0.0.1"),
            431,
            "Request headers",
            id="16 KB line",
        ),
        pytest.param(
            http10(b"/api/status", b"Host: 127.0.0.1", b"X-Big: " + b"b" * 40_000),
            431,
            "Request header too long",
            id="40 KB header",
        ),
        pytest.param(
            http10(b"/api/status", *[b"X-Pad-%d: %s" % (n, b"p" * 100) for n in range(200)]),
            431,
            "Request headers too large",
            id="200 headers of 100 bytes",
        ),
        pytest.param(
            http10(b"/api/status", *[b"X-H%d: v" % n for n in range(2_000)]),
            431,
            "Too many request headers",
            id="2,000 headers",
        ),
        pytest.param(
            b"GET /api/status HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400, "Bad request", id="no colon"
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_oversize_heads_get_a_json_answer_and_the_connection_closes(
    sample_daemon: RunningDaemon, request_bytes: bytes, status: int, message: str
) -> None:
    answer = await exchange(sample_daemon, request_bytes)  # returns once the server has closed
    headers = assert_json_error(answer, status)
    assert headers["connection"] == "close"
    assert json.loads(body_of(answer))["error"].startswith(message)
    assert answer.count(b"HTTP/1.") == 1


@pytest_twisted.ensureDeferred
async def test_a_413_comes_before_any_100_continue(sample_daemon: RunningDaemon) -> None:
    answer = await exchange(
        sample_daemon,
        b"POST /api/stream/ticket HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        b"Content-Length: 99999999\r\nAuthorization: Bearer " + sample_daemon.token.encode() + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 Payload Too Large\r\n")
    assert b"100 Continue" not in answer
    assert_json_error(answer, 413)


@pytest_twisted.ensureDeferred
async def test_a_small_body_expecting_100_continue_still_gets_it(sample_daemon: RunningDaemon) -> None:
    from twisted.internet import reactor

    client = await connect(sample_daemon)
    assert client.transport is not None
    client.transport.write(
        b"POST /api/stream/ticket HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nConnection: close\r\n"
        b"Content-Length: 2\r\nAuthorization: Bearer " + sample_daemon.token.encode() + b"\r\n\r\n"
    )
    await settle(reactor, 0.2)
    assert client.received == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.transport.write(b"{}")
    closed = client.closed
    closed.addTimeout(10, reactor)
    answer = (await closed)[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    assert status_of(answer) == 200 and b'"ticket":' in body_of(answer)


# -- 4. slow clients and the connection cap -----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_head_sent_a_byte_at_a_time_is_cut_off_at_the_deadline_with_408(
    daemon_factory: DaemonFactory, sample_root: str, access_lines: list[dict[str, Any]]
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(sample_root, request_deadline=0.5, idle_timeout=60.0)
    client = await connect(daemon)
    assert client.transport is not None
    started = reactor.seconds()
    head = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 200
    for byte in head:  # each byte resets the idle timeout; the deadline still holds
        if client.closed.called:
            break
        client.transport.write(bytes([byte]))
        await settle(reactor, 0.02)
    assert client.closed.called
    answer = await client.closed
    assert_json_error(answer, 408)
    assert 0.5 <= reactor.seconds() - started < 3.0
    [logged] = [e for e in access_lines if e.get("status") == 408]
    assert logged["line"] == "- - 408 127.0.0.1 (The request did not arrive within 0.5 seconds)"


@pytest_twisted.ensureDeferred
async def test_a_silent_connection_is_closed_at_the_deadline_but_a_kept_alive_one_waits_for_idle(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(sample_root, request_deadline=0.3, idle_timeout=60.0)
    silent = await connect(daemon)
    kept = await connect(daemon)
    assert kept.transport is not None
    kept.transport.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await settle(reactor, 1.0)
    assert silent.closed.called
    assert_json_error(silent.received, 408)
    # Between requests the idle timeout (60 s here) governs, not the deadline.
    assert not kept.closed.called and kept.received.count(b"HTTP/1.1 200 OK") == 1
    assert kept.transport is not None
    kept.transport.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    closed = kept.closed
    closed.addTimeout(10, reactor)
    assert (await closed).count(b"HTTP/1.1 200 OK") == 2


@pytest_twisted.ensureDeferred
async def test_past_the_connection_cap_streams_included_a_new_connection_is_503_json(
    daemon_factory: DaemonFactory, sample_root: str, access_lines: list[dict[str, Any]]
) -> None:
    daemon = await daemon_factory(sample_root, max_connections=3)
    streams = [await open_stream(daemon) for _ in range(3)]
    try:
        for stream in streams:
            assert stream.response.code == 200
            assert (await stream.next_of_type("connected")).type == "connected"
        assert len(daemon.dashboard.site.connections) == 3  # type: ignore[attr-defined]
        answer = await exchange(daemon, http10(b"/api/health", b"Host: 127.0.0.1"))
        headers = assert_json_error(answer, 503)
        assert headers["retry-after"] == "5" and headers["connection"] == "close"
        assert json.loads(body_of(answer))["error"] == "Too many connections (at most 3); retry later"
    finally:
        for stream in streams:
            stream.close()
    from twisted.internet import reactor

    for _ in range(100):
        if not daemon.dashboard.site.connections:  # type: ignore[attr-defined]
            break
        await settle(reactor, 0.02)
    answer = await exchange(daemon, http10(b"/api/health", b"Host: 127.0.0.1"))
    assert status_of(answer) == 200
    # Logged once when the cap is reached and once when it is left, not per connection.
    spells = [e["log_format"] for e in access_lines if "max-connections" in e["log_format"]]
    assert spells == [
        "{count} connections open: answering new ones 503 (--max-connections)",
        "Below --max-connections again; {count} connections were answered 503",
    ]


# -- 5. tickets and secrets in the query string --------------------------------------------


async def ticket_of(daemon: RunningDaemon) -> str:
    answer = await daemon.request("POST", "/api/stream/ticket")
    ticket: str = answer.json()["ticket"]
    return ticket


@pytest_twisted.ensureDeferred
async def test_head_checks_a_ticket_without_using_it_up(sample_daemon: RunningDaemon) -> None:
    ticket = await ticket_of(sample_daemon)
    head = await sample_daemon.request("HEAD", f"/api/stream?ticket={ticket}", authenticated=False)
    assert head.code == 200 and head.header("Content-Type") == "text/event-stream; charset=utf-8"
    assert head.body == b""
    bad = await sample_daemon.request("HEAD", "/api/stream?ticket=not-a-ticket", authenticated=False)
    assert bad.code == 403
    stream = await open_stream(sample_daemon, f"?ticket={ticket}", headers={})
    try:
        assert stream.response.code == 200
        assert (await stream.next_of_type("connected")).type == "connected"
    finally:
        stream.close()
    again = await sample_daemon.request("HEAD", f"/api/stream?ticket={ticket}", authenticated=False)
    assert again.code == 403


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        (b"/api/stream?x=1;ticket=SECRET", b"/api/stream?x=1;ticket=REDACTED"),
        (b"/api/stream?ticket=SECRET;x=1", b"/api/stream?ticket=REDACTED;x=1"),
        (b"/api/stream?tick%65t=SECRET", b"/api/stream?tick%65t=REDACTED"),
        (b"/api/stream?token=SECRET&last_event_id=a-1", b"/api/stream?token=REDACTED&last_event_id=a-1"),
        (b"/api/stream?TOKEN=SECRET", b"/api/stream?TOKEN=REDACTED"),
        (b"/api/stream?%74oken=SECRET", b"/api/stream?%74oken=REDACTED"),
        (b"/api/stream?a=1&&;;token=SECRET", b"/api/stream?a=1&&;;token=REDACTED"),
        (b"/api/stream?access_token=S&auth=S", b"/api/stream?access_token=REDACTED&auth=REDACTED"),
        (b"/api/stream?x=ticket=SECRET", b"/api/stream?x=ticket=SECRET"),  # a value, not a name
    ],
)
def test_every_way_a_secret_can_arrive_in_the_query_is_redacted(uri: bytes, redacted: bytes) -> None:
    assert redact_uri(uri) == redacted


@pytest_twisted.ensureDeferred
async def test_a_ticket_after_a_semicolon_opens_the_stream_and_is_redacted_in_the_log(
    sample_daemon: RunningDaemon, access_lines: list[dict[str, Any]]
) -> None:
    from twisted.internet import reactor

    ticket = await ticket_of(sample_daemon)
    stream = await open_stream(sample_daemon, f"?x=1;ticket={ticket}", headers={})
    assert stream.response.code == 200
    assert (await stream.next_of_type("connected")).type == "connected"
    await settle(reactor, 0.3)
    stream.close()
    for _ in range(100):
        if any(e["uri"].startswith("/api/stream?") for e in access_lines):
            break
        await settle(reactor, 0.02)
    [line] = [e for e in access_lines if e["uri"].startswith("/api/stream?")]
    assert line["uri"] == "/api/stream?x=1;ticket=REDACTED"
    assert ticket not in line["line"]
    # A stream the client closed is logged when it ends, with how long it lasted.
    assert line["closed_by_client"] is True and line["status"] == 200
    assert line["duration_ms"] >= 250
    assert line["line"].endswith("(closed by the client)")


# -- 6. ?token= on /api/stream only --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_token_in_the_query_opens_the_stream_and_is_redacted(
    sample_daemon: RunningDaemon, access_lines: list[dict[str, Any]]
) -> None:
    from twisted.internet import reactor

    token = sample_daemon.token
    stream = await open_stream(sample_daemon, f"?token={token}", headers={})
    try:
        assert stream.response.code == 200
        assert (await stream.next_of_type("connected")).type == "connected"
        assert (await stream.next()).type == "status_update"
    finally:
        stream.close()
    # Not a ticket: it can be used again.
    head = await sample_daemon.request("HEAD", f"/api/stream?token={token}", authenticated=False)
    assert head.code == 200
    for _ in range(100):
        if sum(e["uri"].startswith("/api/stream?") for e in access_lines) >= 2:
            break
        await settle(reactor, 0.02)
    stream_lines = [e for e in access_lines if e["uri"].startswith("/api/stream?")]
    assert [e["uri"] for e in stream_lines] == ["/api/stream?token=REDACTED"] * 2
    assert all(token not in e["line"] for e in access_lines)


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("?token=wrong", 403, "Invalid authentication token"),
        ("?token=%C3%A9", 403, "Invalid authentication token"),
        ("?token={token}&token={token}", 401, "Send one token"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_bad_query_token_is_refused_with_json(
    sample_daemon: RunningDaemon, query: str, status: int, error: str
) -> None:
    answer = await sample_daemon.get(
        "/api/stream" + query.format(token=sample_daemon.token), authenticated=False
    )
    assert answer.code == status
    assert answer.json() == {"error": error}


@pytest.mark.parametrize("path", ["/api/status", "/api/stories", "/metrics", "/api/stream/ticket"])
@pytest_twisted.ensureDeferred
async def test_the_query_token_is_accepted_on_the_stream_only(
    sample_daemon: RunningDaemon, path: str
) -> None:
    method = "POST" if path.endswith("ticket") else "GET"
    answer = await sample_daemon.request(method, f"{path}?token={sample_daemon.token}", authenticated=False)
    assert answer.code == 401
    assert answer.json() == {"error": "Missing or invalid Authorization header"}


@pytest_twisted.ensureDeferred
async def test_wrong_query_tokens_are_throttled_like_the_header(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    daemon = await daemon_factory(sample_root, auth_failure_burst=3)
    codes = [(await daemon.get("/api/stream?token=wrong", authenticated=False)).code for _ in range(5)]
    assert codes == [403, 403, 403, 429, 429]
    throttled = await daemon.get("/api/stream?token=wrong", authenticated=False)
    assert throttled.header("Retry-After") is not None
    assert throttled.json() == {"error": "Too many failed authentication attempts; retry later"}
    # The right token is still served.
    head = await daemon.request("HEAD", f"/api/stream?token={daemon.token}", authenticated=False)
    assert head.code == 200


# -- 7. odd request forms ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_options_star_carries_the_security_headers(sample_daemon: RunningDaemon) -> None:
    answer = await exchange(sample_daemon, b"OPTIONS * HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(answer) == 204
    headers = headers_of(answer)
    assert headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert body_of(answer) == b""
    other = await exchange(sample_daemon, b"GET * HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert assert_json_error(other, 405)["allow"] == "OPTIONS"
    rebound = await exchange(sample_daemon, b"OPTIONS * HTTP/1.0\r\nHost: evil.example\r\n\r\n")
    assert_json_error(rebound, 421)


@pytest_twisted.ensureDeferred
async def test_an_absolute_form_target_is_served_as_the_path_it_names(sample_daemon: RunningDaemon) -> None:
    port = str(port_of(sample_daemon)).encode()
    health = await exchange(sample_daemon, http10(b"http://127.0.0.1:" + port + b"/api/health"))
    assert status_of(health) == 200 and json.loads(body_of(health))["status"] == "ok"
    token = sample_daemon.token.encode()
    logs = await exchange(
        sample_daemon,
        http10(
            b"HTTP://localhost:" + port + b"/api/logs?limit=1",
            b"Host: 127.0.0.1",
            b"Authorization: Bearer " + token,
        ),
    )
    assert status_of(logs) == 200 and json.loads(body_of(logs))["limit"] == 1
    missing = await exchange(sample_daemon, http10(b"http://127.0.0.1:" + port + b"/api/runs//etc"))
    assert_json_error(missing, 404)


@pytest_twisted.ensureDeferred
async def test_an_absolute_form_authority_not_on_the_list_is_421_whatever_the_host_header(
    sample_daemon: RunningDaemon,
) -> None:
    answer = await exchange(sample_daemon, http10(b"http://evil.example/api/health", b"Host: 127.0.0.1"))
    assert_json_error(answer, 421)


@pytest_twisted.ensureDeferred
async def test_treq_sees_the_same_421(sample_daemon: RunningDaemon) -> None:
    response = await treq.get(sample_daemon.url + "/api/health", headers={b"Host": [b"evil.example"]})
    assert response.code == 421
    assert (await response.json())["error"].startswith("This daemon does not answer")


# -- the OpenAPI document lists the edge's answers ------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_served_openapi_document_lists_the_edge_answers_on_every_operation(
    sample_daemon: RunningDaemon,
) -> None:
    document = (await sample_daemon.get("/api/openapi.json", authenticated=False)).json()
    responses = document["components"]["responses"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = operation["responses"]
            for code in ("400", "408", "414", "421", "431", "503"):
                assert code in codes, (path, method, code)
            assert codes["421"] == {"$ref": "#/components/responses/MisdirectedRequest"}
    assert "Retry-After" in responses["ServiceUnavailable"]["headers"]
    assert "413" in document["paths"]["/api/stream/ticket"]["post"]["responses"]
    assert {"streamToken": []} in document["paths"]["/api/stream"]["get"]["security"]

"""Hostile or broken clients: oversized and malformed requests, idle connections, odd credentials.

Each case says what the daemon answers and that it keeps serving everyone
else. Raw bytes go over a real socket where treq would refuse to send them.
(A client that opens a stream and never reads is covered by test_stream.py.)
"""

from __future__ import annotations

import json
import os

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from loopdash.server.accesslog import redact_uri
from loopdash.server.limits import MAX_BODY_BYTES
from tests.conftest import DaemonFactory
from tests.support import RunningDaemon, open_stream, settle


class RawClient(Protocol):
    """Sends bytes as given; collects everything the server says until it closes."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed.callback(self.received)


async def connect(daemon: RunningDaemon) -> RawClient:
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    port = int(daemon.url.rsplit(":", 1)[1])
    client = RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    return client


async def exchange(daemon: RunningDaemon, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` (the request closes the connection) and return the whole answer."""
    from twisted.internet import reactor

    client = await connect(daemon)
    assert client.transport is not None
    client.transport.write(data)
    closed = client.closed
    closed.addTimeout(timeout, reactor)
    return await closed


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


def request(target: bytes, *headers: bytes) -> bytes:
    # HTTP/1.0: the answer is not chunked and the server closes the connection after it.
    lines = [b"GET " + target + b" HTTP/1.0", b"Host: 127.0.0.1", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def still_serving(daemon: RunningDaemon) -> None:
    answer = await daemon.get("/api/status")
    assert answer.code == 200


# -- oversized and malformed requests ------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(request(b"/api/status?q=" + b"a" * 20_000), 414, id="20 KB request line"),
        pytest.param(request(b"/api/status", b"X-Big: " + b"b" * 20_000), 431, id="20 KB header"),
        pytest.param(
            request(b"/api/status", *[b"X-H%d: v" % n for n in range(2_000)]), 431, id="2,000 headers"
        ),
        pytest.param(
            request(b"/api/status", *[b"X-Pad-%d: %s" % (n, b"p" * 100) for n in range(200)]),
            431,
            id="200 headers of 100 bytes",
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_an_oversize_head_is_answered_414_or_431_json_then_closed(
    sample_daemon: RunningDaemon, case: bytes, expected: int
) -> None:
    # Twisted alone would hang up without a word (line limit) or answer a bare 400 (head limits).
    answer = await exchange(sample_daemon, case)
    assert status_of(answer) == expected
    assert b"\r\nConnection: close\r\n" in answer
    assert "error" in json.loads(body_of(answer))
    await still_serving(sample_daemon)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            b"GET /api/status HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", id="header without colon"
        ),
        pytest.param(b"\x00\x01\x02garbage\r\n\r\n", id="binary garbage"),
        pytest.param(b"GET /api/status HTTP/1.1\r\nContent-Length: -5\r\n\r\n", id="negative length"),
        pytest.param(
            b"GET /api/status HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", id="two lengths"
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_malformed_requests_are_400_json_and_disconnected(
    sample_daemon: RunningDaemon, case: bytes
) -> None:
    answer = await exchange(sample_daemon, case)
    assert status_of(answer) == 400
    assert json.loads(body_of(answer)) == {"error": "Bad request"}
    assert b"Traceback" not in answer
    await still_serving(sample_daemon)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/api/runs/%00", 404),
        (b"/api/runs/20260101_000000%00", 404),
        (b"/api/runs/..%2f..%2f..%2fetc%2fpasswd", 404),
        (b"/api/runs/" + b"9" * 5_000, 404),
        (b"/api/logs?limit=%ff%fe", 400),
        (b"/api/logs?limit=" + b"9" * 5_000, 200),
        (b"/api/logs?offset=1%00", 400),
        (b"/api/logs?limit=%zz&offset=", 400),
        (b"/api/stories?run_id=%ff", 404),
        (b"/api/stories?run_id=%00", 404),
        (b"/api/status?" + b"&".join(b"k%d=v" % n for n in range(1_000)), 200),
        (b"/api/status?%zz=%zz&=&&", 200),
        (b"/api/status/../status", 404),
        (b"/api/%ff%fe", 400),
        (b"/api/runs/%c3%28", 400),
    ],
)
@pytest_twisted.ensureDeferred
async def test_hostile_paths_and_queries_get_a_json_answer_never_a_500(
    sample_daemon: RunningDaemon, target: bytes, expected: int
) -> None:
    token = sample_daemon.token.encode()
    answer = await exchange(sample_daemon, request(target, b"Authorization: Bearer " + token))
    assert status_of(answer) == expected, answer[:300]
    body = json.loads(body_of(answer))
    assert ("error" in body) == (expected != 200)


@pytest.mark.parametrize(
    "last_event_id",
    ["", "x", "-", "-1", "abc-", "a-b-c-99999999999999999999999", "\u00e9\u00e8-1", "0" * 4_000, "%00-1"],
)
@pytest_twisted.ensureDeferred
async def test_any_last_event_id_opens_a_stream_that_starts_with_a_status(
    sample_daemon: RunningDaemon, last_event_id: str
) -> None:
    stream = await open_stream(
        sample_daemon, headers={**sample_daemon.auth(), b"Last-Event-ID": [last_event_id.encode("utf-8")]}
    )
    try:
        assert stream.response.code == 200
        first, second = await stream.next(), await stream.next()
        assert (first.retry, first.type, second.type) == (3000, None, "connected")
        assert (await stream.next()).type == "status_update"
    finally:
        stream.close()


@given(st.binary(max_size=200))
def test_redacting_any_uri_never_raises_and_never_leaks_a_ticket(query: bytes) -> None:
    uri = b"/api/stream?" + query + b"&ticket=SECRET-VALUE"
    redacted = redact_uri(uri)
    assert b"SECRET-VALUE" not in redacted
    assert redacted.startswith(b"/api/stream?")


# -- request bodies: none of our routes reads one -------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"Content-Length: 10000000000\r\n", id="10 GB declared"),
        pytest.param(b"Content-Length: %d\r\n" % (MAX_BODY_BYTES + 1), id="one byte over"),
        pytest.param(b"Transfer-Encoding: chunked\r\n", id="chunked, endless"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_body_over_the_bound_is_413_json_and_the_connection_closed(
    sample_daemon: RunningDaemon, head: bytes
) -> None:
    from twisted.internet import reactor

    client = await connect(sample_daemon)
    assert client.transport is not None
    client.transport.write(
        b"POST /api/stream/ticket HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + sample_daemon.token.encode()
        + b"\r\n"
        + head
        + b"\r\n"
    )
    chunk = b"x" * 16_384
    # Keep sending (a chunked body chunk by chunk) until the server hangs up: bounded.
    for _ in range(MAX_BODY_BYTES // len(chunk) + 4):
        if client.closed.called:
            break
        if b"chunked" in head:
            client.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            client.transport.write(chunk)
        await settle(reactor, 0.01)
    closed = client.closed
    closed.addTimeout(10, reactor)
    answer = await closed
    assert status_of(answer) == 413
    assert json.loads(body_of(answer))["error"].startswith("Request body too large")
    await still_serving(sample_daemon)


@pytest_twisted.ensureDeferred
async def test_a_small_body_is_accepted_and_ignored(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.request("POST", "/api/stream/ticket", data=b"x" * MAX_BODY_BYTES)
    assert answer.code == 200 and answer.json()["ticket"]
    chunked = await exchange(
        sample_daemon,
        b"POST /api/stream/ticket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\nAuthorization: Bearer "
        + sample_daemon.token.encode()
        + b"\r\n\r\n3e8\r\n"
        + b"a" * 1000
        + b"\r\n0\r\n\r\n",
    )
    assert status_of(chunked) == 200


# -- idle connections -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_idle_and_half_sent_connections_are_closed_while_streams_stay_open(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(sample_root, idle_timeout=0.5, keepalive=0.2)
    stream = await open_stream(daemon)
    silent = await connect(daemon)
    half = await connect(daemon)
    assert half.transport is not None
    half.transport.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for client in (silent, half):
        closed = client.closed
        closed.addTimeout(10, reactor)
        assert await closed == b""  # closed without an answer
    # The stream outlived the idle timeout: keepalives still arrive on it.
    comments = [(await stream.next(comments=True)).comment for _ in range(4)]
    assert "keepalive" in comments
    assert not stream.ended.called
    stream.close()
    await still_serving(daemon)


@pytest_twisted.ensureDeferred
async def test_a_kept_alive_connection_serves_requests_then_times_out_when_idle(
    daemon_factory: DaemonFactory, sample_root: str
) -> None:
    from twisted.internet import reactor

    daemon = await daemon_factory(sample_root, idle_timeout=0.5)
    client = await connect(daemon)
    assert client.transport is not None
    get = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    client.transport.write(get + get)
    closed = client.closed
    closed.addTimeout(10, reactor)
    answer = await closed
    assert answer.count(b"HTTP/1.1 200 OK") == 2


# -- credentials: each odd form has a defined answer ------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(b"Bearer   {token}   ", 200, id="surrounding spaces"),
        pytest.param(b"  bearer {token}", 200, id="leading spaces, lowercase scheme"),
        pytest.param(b"BeArEr {token}", 200, id="mixed-case scheme"),
        pytest.param(b"Bearer\t{token}", 401, id="tab instead of space"),
        pytest.param(b"Bearer {token} extra", 403, id="trailing word"),
        pytest.param(b"Bearer {token}{token}", 403, id="token twice"),
        pytest.param(b"Bearer \xc3\xa9{token}", 401, id="non-ASCII"),
        pytest.param(b"Bearer " + b"x" * 8_000, 403, id="8 KB token"),
        pytest.param(b"Basic {token}", 401, id="other scheme"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_odd_authorization_headers_have_defined_answers(
    sample_daemon: RunningDaemon, header: bytes, expected: int
) -> None:
    value = header.replace(b"{token}", sample_daemon.token.encode())
    answer = await exchange(sample_daemon, request(b"/api/status", b"Authorization: " + value))
    assert status_of(answer) == expected
    if expected != 200:
        assert "error" in json.loads(body_of(answer))


async def _write_token_file(daemon: RunningDaemon, content: bytes) -> None:
    from twisted.internet import reactor

    path = daemon.dashboard.config.token_path
    with open(path, "wb") as f:
        f.write(content)
    # TokenFile re-reads on a change of (inode, mtime_ns, size): make sure the time moves.
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    await settle(reactor)


@pytest_twisted.ensureDeferred
async def test_a_token_file_with_surrounding_whitespace_holds_the_stripped_token(
    sample_daemon: RunningDaemon,
) -> None:
    await _write_token_file(sample_daemon, b"\n  \tmy-token-value \r\n\n")
    assert (await sample_daemon.get("/api/status", token="my-token-value")).code == 200
    assert (await sample_daemon.get("/api/status", token="  my-token-value")).code == 200


@pytest.mark.parametrize("content", [b"", b" \n\t\n", b"\xff\xfe"], ids=["empty", "whitespace", "not UTF-8"])
@pytest_twisted.ensureDeferred
async def test_an_empty_or_unusable_token_file_refuses_every_token(
    sample_daemon: RunningDaemon, content: bytes
) -> None:
    await _write_token_file(sample_daemon, content)
    assert (await sample_daemon.get("/api/status", token="anything")).code == 403
    assert (await sample_daemon.get("/api/status", token="Bearer")).code == 403
    # Undecodable bytes read as U+FFFD, which no ASCII header can carry: 401.
    assert (await sample_daemon.get("/api/status", token="\ufffd\ufffd")).code == 401
    assert (await sample_daemon.get("/api/health", authenticated=False)).code == 200

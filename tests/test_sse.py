"""The SSE parser against the HTML standard's event stream interpretation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopdash.client.sse import ServerSentEvent, SSEParser

E = ServerSentEvent


def parse_whole(stream: bytes) -> list[ServerSentEvent]:
    return SSEParser().feed(stream)


def parse_bytewise(stream: bytes) -> list[ServerSentEvent]:
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    for i in range(len(stream)):
        events.extend(parser.feed(stream[i : i + 1]))
    return events


# (why, stream, events) -- the cases the standard spells out, and its examples.
CASES: list[tuple[str, bytes, list[ServerSentEvent]]] = [
    ("a single data line", b"data: hello\n\n", [E("hello")]),
    ("no space after the colon", b"data:hello\n\n", [E("hello")]),
    ("only one leading space is removed", b"data:  two spaces\n\n", [E(" two spaces")]),
    ("multi-line data joined with LF", b"data: YHOO\ndata: +2\ndata: 10\n\n", [E("YHOO\n+2\n10")]),
    ("CRLF line ends", b"data: a\r\ndata: b\r\n\r\n", [E("a\nb")]),
    ("CR line ends", b"data: a\rdata: b\r\r", [E("a\nb")]),
    ("mixed line ends", b"data: a\r\ndata: b\rdata: c\n\r\n", [E("a\nb\nc")]),
    ("a comment is ignored", b": keepalive\n\ndata: x\n\n", [E("x")]),
    ("comment lines inside an event", b"data: a\n:comment\ndata: b\n\n", [E("a\nb")]),
    ("no dispatch without data", b"event: ping\n\n", []),
    ("a blank line alone dispatches nothing", b"\n\n\n", []),
    ("an empty data field dispatches an empty string", b"data\n\n", [E("")]),
    ("two empty data fields give one LF", b"data\ndata\n\n", [E("\n")]),
    ("'data:' with nothing after", b"data:\n\n", [E("")]),
    ("a trailing event without a blank line is not dispatched", b"data: a\n\ndata: b\n", [E("a")]),
    ("an unterminated last line is not dispatched", b"data: a\n\ndata: b", [E("a")]),
    ("event names the type", b"event: add\ndata: 73857293\n\n", [E("73857293", "add")]),
    ("an empty event name means message", b"event:\ndata: x\n\n", [E("x")]),
    ("the type resets after dispatch", b"event: add\ndata: 1\n\ndata: 2\n\n", [E("1", "add"), E("2")]),
    ("the type resets even without dispatch", b"event: add\n\ndata: 2\n\n", [E("2")]),
    ("id is carried by the event", b"id: 1\ndata: x\n\n", [E("x", last_event_id="1")]),
    (
        "id persists to later events",
        b"id: 7\ndata: a\n\ndata: b\n\n",
        [E("a", last_event_id="7"), E("b", last_event_id="7")],
    ),
    ("an empty id resets it", b"id: 7\ndata: a\n\nid\ndata: b\n\n", [E("a", last_event_id="7"), E("b")]),
    (
        "an id holding NUL is ignored",
        b"id: 7\ndata: a\n\nid: 8\x00x\ndata: b\n\n",
        [E("a", last_event_id="7"), E("b", last_event_id="7")],
    ),
    ("an id field without data still sets the id", b"id: 9\n\ndata: b\n\n", [E("b", last_event_id="9")]),
    ("the id applies when the event dispatches", b"data: a\nid: 3\n\n", [E("a", last_event_id="3")]),
    ("unknown fields are ignored", b"foo: bar\ndata: x\nDATA: y\n\n", [E("x")]),
    ("a field name is case-sensitive", b"Data: x\n\n", []),
    ("a colon inside the value is kept", b"data: a: b\n\n", [E("a: b")]),
    ("a leading BOM is ignored", b"\xef\xbb\xbfdata: x\n\n", [E("x")]),
    ("only one BOM is ignored", b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", []),
    ("a BOM later is data", b"data: \xef\xbb\xbfx\n\n", [E("\ufeffx")]),
    ("UTF-8 text", "data: café ☕ 🚀\n\n".encode(), [E("café ☕ 🚀")]),
    ("invalid UTF-8 becomes U+FFFD", b"data: a\xffb\n\n", [E("a\ufffdb")]),
    ("the spec's example: four blocks", b"data\n\ndata\ndata\n\ndata:\n", [E(""), E("\n")]),
    ("the spec's example: leading space", b"data:test\n\ndata: test\n\n", [E("test"), E("test")]),
]


@pytest.mark.parametrize("why, stream, expected", CASES, ids=[c[0] for c in CASES])
def test_edge_cases_whole_and_byte_by_byte(why: str, stream: bytes, expected: list[ServerSentEvent]) -> None:
    assert parse_whole(stream) == expected
    assert parse_bytewise(stream) == expected


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # The LF belongs to the CR before it: no blank line, no dispatch yet.
    assert parser.feed(b"\ndata: b\r") == []
    # The CR ends the blank line at once; the LF after it adds no second blank line.
    assert parser.feed(b"\n\r") == [E("a\nb")]
    assert parser.feed(b"\n") == []
    assert parser.feed(b"data: c\n\n") == [E("c")]


def test_cr_at_chunk_end_then_blank_line_dispatches() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [E("a")]


def test_retry_digits_only() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 3000\n\n")
    assert parser.retry == 3000
    for bad in (b"retry: 3e3\n", b"retry: -1\n", b"retry:\n", b"retry: 10 \n", b"retry: \xd9\xa3\n"):
        parser.feed(bad)
        assert parser.retry == 3000, bad
    parser.feed(b"retry:0\n")
    assert parser.retry == 0


def test_retry_unset_until_sent() -> None:
    parser = SSEParser()
    parser.feed(b"data: x\n\n")
    assert parser.retry is None


def test_last_event_id_tracks_dispatch_not_the_buffer() -> None:
    parser = SSEParser()
    parser.feed(b"id: 1\ndata: x\n\nid: 2\n")
    # id 2 is in the buffer but no blank line has dispatched it yet.
    assert parser.last_event_id == "1"
    parser.feed(b"\n")
    assert parser.last_event_id == "2"


def test_the_contract_stream() -> None:
    stream = (
        b"retry: 3000\n\n"
        b'id: b-1\ndata: {"type":"connected"}\n\n'
        b": keepalive\n\n"
        b'id: b-2\ndata: {"type":"status_update"}\n\n'
    )
    parser = SSEParser()
    events = parser.feed(stream)
    assert [e.data for e in events] == ['{"type":"connected"}', '{"type":"status_update"}']
    assert [e.last_event_id for e in events] == ["b-1", "b-2"]
    assert parser.retry == 3000 and parser.last_event_id == "b-2"


lines = st.lists(
    st.one_of(
        st.sampled_from(
            ["", ":", ": keepalive", "data", "data:", "event: x", "id: 4", "id", "retry: 12", "retry: x"]
        ),
        st.builds(
            lambda v: "data: " + v,
            st.text(
                alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12
            ),
        ),
        st.builds(lambda v: "id:" + v, st.text(alphabet="ab\0 1", max_size=4)),
    ),
    max_size=25,
)
endings = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def streams_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    body = "".join(line + draw(endings) for line in draw(lines))
    if draw(st.booleans()):
        body = "\ufeff" + body
    data = body.encode("utf-8")
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    return data, cuts


@settings(max_examples=300, deadline=None)
@given(streams_and_cuts())
def test_any_chunking_gives_the_same_events_and_state(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    whole = SSEParser()
    expected = whole.feed(data)
    chunked = SSEParser()
    events: list[ServerSentEvent] = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=False):
        events.extend(chunked.feed(data[start:end]))
    assert events == expected
    assert (chunked.last_event_id, chunked.retry) == (whole.last_event_id, whole.retry)

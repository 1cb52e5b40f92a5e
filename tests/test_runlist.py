"""The full run list kept as one answer: rows copied from it until due, the rest encoded again."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from loopdash.server.runlist import ROW_RECHECK, RunListRows, first_check_offset


class Rows:
    """Each run's row as its files say now (a version bumped per change), counting encodes."""

    def __init__(self) -> None:
        self.version: dict[str, int] = {}
        self.encoded: list[str] = []

    def encode(self, run_id: str) -> bytes:
        self.encoded.append(run_id)
        return json.dumps(
            {"run_id": run_id, "v": self.version.get(run_id, 0)}, separators=(",", ":")
        ).encode()


def ids(*numbers: int) -> tuple[str, ...]:
    return tuple(f"20261101_{n:06d}" for n in numbers)


def test_rows_come_newest_first_and_each_is_encoded_once_until_due() -> None:
    rows, kept = Rows(), RunListRows()
    runs = ids(1, 2, 3)
    body = kept.body(runs, runs[-1], 1000.0, rows.encode)
    assert [row["run_id"] for row in json.loads(body)] == list(reversed(runs))
    assert sorted(rows.encoded) == sorted(runs)
    rows.encoded.clear()
    for run in runs:
        rows.version[run] = 1  # changed on disk: not seen until the row is due
    body = kept.body(runs, runs[-1], 1000.5, rows.encode)
    assert rows.encoded == [runs[-1]]  # the current run is read every time
    assert [row["v"] for row in json.loads(body)] == [1, 0, 0]


def test_an_older_row_is_encoded_again_once_due_and_its_first_check_is_spread() -> None:
    rows, kept = Rows(), RunListRows()
    runs = ids(1, 2, 3)
    kept.body(runs, None, 1000.0, rows.encode)
    due = kept.check_after(runs[0])
    assert due == 1000.0 + ROW_RECHECK - first_check_offset(runs[0])
    rows.version[runs[0]] = 7
    rows.encoded.clear()
    assert due is not None
    body = kept.body(runs, None, due - 0.001, rows.encode)
    assert runs[0] not in rows.encoded and json.loads(body)[-1]["v"] == 0
    body = kept.body(runs, None, due, rows.encode)
    assert runs[0] in rows.encoded and json.loads(body)[-1]["v"] == 7
    # From then on, a whole period: the spread was for the first check only.
    assert kept.check_after(runs[0]) == due + ROW_RECHECK


def test_a_new_run_and_a_removed_one_keep_the_other_rows_as_they_were() -> None:
    rows, kept = Rows(), RunListRows()
    kept.body(ids(1, 3, 5), None, 1000.0, rows.encode)
    for number in (1, 3, 5):
        rows.version[ids(number)[0]] = 9  # not due: the kept rows stay
    rows.encoded.clear()
    body = kept.body(ids(1, 2, 5, 6), ids(6)[0], 1000.1, rows.encode)
    assert rows.encoded == [ids(6)[0], ids(2)[0]]
    assert json.loads(body) == [
        {"run_id": ids(6)[0], "v": 0},
        {"run_id": ids(5)[0], "v": 0},
        {"run_id": ids(2)[0], "v": 0},
        {"run_id": ids(1)[0], "v": 0},
    ]
    assert kept.check_after(ids(3)[0]) is None
    assert kept.body((), None, 1000.2, rows.encode) == b"[]"


@given(
    st.lists(
        st.tuples(
            st.frozensets(st.integers(0, 12), max_size=10),  # the runs on disk
            st.sets(st.integers(0, 12), max_size=4),  # runs whose files change
            st.floats(0.0, 8.0),  # seconds until the next answer
            st.booleans(),  # whether the newest run is the current one
        ),
        max_size=25,
    )
)
def test_every_answer_is_each_runs_row_as_last_encoded(
    steps: list[tuple[frozenset[int], set[int], float, bool]],
) -> None:
    """Against a model that keeps each row's bytes and due time in a dict."""
    rows, kept = Rows(), RunListRows()
    model: dict[str, tuple[bytes, float]] = {}
    now = 1000.0
    for present, changed, pause, newest_current in steps:
        now += pause
        for number in changed:
            run = ids(number)[0]
            rows.version[run] = rows.version.get(run, 0) + 1
        runs = ids(*sorted(present))
        current = runs[-1] if runs and newest_current else None
        expected = []
        for run in reversed(runs):
            if run in model and run != current and now < model[run][1]:
                expected.append(model[run][0])
                continue
            due = now + ROW_RECHECK - (first_check_offset(run) if run not in model else 0.0)
            model[run] = (rows.encode(run), due)
            expected.append(model[run][0])
        for run in set(model) - set(runs):
            del model[run]
        assert kept.body(runs, current, now, rows.encode) == b"[" + b",".join(expected) + b"]"
        for run in runs:
            assert kept.check_after(run) == model[run][1]

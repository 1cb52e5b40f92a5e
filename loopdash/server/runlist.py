"""The full run list (``GET /api/runs``) as one JSON array, each row's bytes kept only there.

The daemon keeps something for every run on disk for as long as it runs, so
what it keeps per run is a growth over days (``docs/limits.md``). The run list
is the one answer with a row per run: it used to keep each row's JSON on its
own (to be joined again when another row changed) and the joined answer
besides, about 550 bytes a run. :class:`RunListRows` keeps the answer only,
with each row's place in it (16 bytes) and when to check the row again (8
bytes); a row that has not changed is copied from the last answer into the
next. Pure: the caller passes the clock's time and a function that encodes a
row.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Callable

#: Seconds an older run's row in the full run list goes unchecked (the current run's: none).
ROW_RECHECK = 10.0


def first_check_offset(run_id: str, period: float = ROW_RECHECK) -> float:
    """Seconds (0 to ``period``) a run's first check is brought forward, drawn from its id.

    Checking 5,000 older rows at once (a stat each) took 30 ms: spread over the
    period, about a tenth of them fall due in any one second.
    """
    return (zlib.crc32(run_id.encode("ascii", "replace")) % 1000) / 1000 * period


class RunListRows:
    """The JSON array of every run's row, newest first, rebuilt from the last one.

    :meth:`body` takes the run list (oldest first, as the project lists it), the
    current run's id and the time; rows of older runs not yet due for a check
    are copied from the previous answer, the others are encoded again with
    ``encode`` (a run's id to its row's JSON, bytes) and rechecked after
    ``recheck`` seconds. The current run's row is encoded every time.
    """

    def __init__(self, recheck: float = ROW_RECHECK) -> None:
        self.recheck = recheck
        #: The run list the answer was built for, oldest first.
        self._ids: tuple[str, ...] = ()
        self._body = b"[]"
        #: Per run (in ``_ids``' order): where its row starts and ends in ``_body``.
        self._spans = array("q")
        #: Per run: when its row is to be checked again (clock seconds).
        self._due = array("d")

    def body(
        self, run_ids: tuple[str, ...], current: str | None, now: float, encode: Callable[[str], bytes]
    ) -> bytes:
        old_ids, old_spans, old_due = self._ids, self._spans, self._due
        # Positions are those of the last list when it is the same; else looked up once.
        same = run_ids is old_ids or run_ids == old_ids
        where = None if same else {run_id: index for index, run_id in enumerate(old_ids)}
        count = len(run_ids)
        spans = array("q", bytes(16 * count))
        due = array("d", bytes(8 * count))
        pieces: list[bytes | memoryview] = []
        with memoryview(self._body) as last:
            offset = 1  # after "["
            for index in range(count - 1, -1, -1):  # newest first
                run_id = run_ids[index]
                old = index if where is None else where.get(run_id)
                if old is not None and run_id != current and now < old_due[old]:
                    piece: bytes | memoryview = last[old_spans[2 * old] : old_spans[2 * old + 1]]
                    due[index] = old_due[old]
                else:
                    piece = encode(run_id)
                    first = old is None
                    due[index] = (
                        now + self.recheck - (first_check_offset(run_id, self.recheck) if first else 0.0)
                    )
                pieces.append(piece)
                spans[2 * index] = offset
                offset += len(piece)
                spans[2 * index + 1] = offset
                offset += 1  # the comma
            body = b"[" + b",".join(pieces) + b"]"
            # The views of the last answer go before it is released (else BufferError).
            pieces.clear()
            piece = b""
        self._ids, self._body, self._spans, self._due = run_ids, body, spans, due
        return body

    def check_after(self, run_id: str) -> float | None:
        """When ``run_id``'s row is checked again (clock seconds); None if it is not in the list."""
        try:
            return self._due[self._ids.index(run_id)]
        except ValueError:
            return None

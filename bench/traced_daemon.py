"""``twistd`` with tracemalloc on: a snapshot on each SIGUSR2 (``bench/soak.py --trace``).

``python -m bench.traced_daemon -n --pidfile= loopdash --root DIR ...`` runs
twistd exactly as ``twistd`` would, with ``tracemalloc`` tracing
``LOOPDASH_TRACE_FRAMES`` frames (10) per allocation; each SIGUSR2 writes
``snapshot-<n>.pickle`` into ``LOOPDASH_TRACE_DIR``. Compare two snapshots with
``bench/soak.py``'s report or ``tracemalloc.Snapshot.load(...).compare_to``.
Tracing makes the daemon slower: figures of a traced soak are not its figures.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from types import FrameType


def main() -> None:
    tracemalloc.start(int(os.environ.get("LOOPDASH_TRACE_FRAMES", "10")))
    directory = os.environ["LOOPDASH_TRACE_DIR"]
    taken = [0]

    def dump(signum: int, frame: FrameType | None) -> None:
        taken[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(directory, f"snapshot-{taken[0]}.pickle"))

    signal.signal(signal.SIGUSR2, dump)
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()

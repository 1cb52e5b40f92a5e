"""``twistd`` with tracemalloc on: a snapshot on each SIGUSR2 (``bench/soak.py --trace``).

``python -m bench.traced_daemon -n --pidfile= loopdash --root DIR ...`` runs
twistd exactly as ``twistd`` would. The first SIGUSR2 starts ``tracemalloc``
(``LOOPDASH_TRACE_FRAMES`` frames per allocation, 10: tracing from the start
made twistd's imports take over a minute); each later one writes
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
    frames = int(os.environ.get("LOOPDASH_TRACE_FRAMES", "10"))
    directory = os.environ["LOOPDASH_TRACE_DIR"]
    taken = [0]

    def dump(signum: int, frame: FrameType | None) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(frames)
            return
        taken[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(directory, f"snapshot-{taken[0]}.pickle"))

    signal.signal(signal.SIGUSR2, dump)
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()

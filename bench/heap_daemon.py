"""``twistd`` that writes where its memory is, every so often (``bench/soak.py --heap``).

``python -m bench.heap_daemon -n --pidfile= loopdash --root DIR ...`` runs twistd
exactly as ``twistd`` would, plus a thread that every ``LOOPDASH_HEAP_EVERY``
seconds (30) appends one JSON line to ``LOOPDASH_HEAP_LOG``:

- ``rss_kib``: the resident set, and ``maps``: its KiB by kind of mapping
  (``heap``: glibc's main arena, ``anon``: anonymous mappings, which hold
  pymalloc's 1 MiB arenas, glibc's other arenas and large blocks,
  ``stack``, ``file``: code and data of loaded files);
- ``malloc``: glibc's ``mallinfo2()`` in KiB (``arena``: bytes got from the
  system by brk, ``in_use``: allocated, ``free``: free but kept, ``mmapped``:
  large blocks mapped on their own);
- ``pymalloc``: arenas in use and the highest count, and bytes in them
  (parsed from ``sys._debugmallocstats()``);
- with ``LOOPDASH_HEAP_TYPES=1``, ``objects``: the most numerous kinds of
  objects the garbage collector tracks (to find what grows; each count walks
  every object, holding the interpreter for tens of milliseconds).

Where the resident set grows while ``in_use`` stays flat, freed memory is kept
(fragmentation); where ``in_use`` grows while tracemalloc's total does not
(bench/soak.py ``--trace``), C code allocates outside Python's allocators.
Slower than twistd by a few milliseconds per sample; run by hand, not a test.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import sys
import tempfile
import threading
import time
from typing import Any


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): every field a size_t."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_kib() -> dict[str, int] | None:
    """glibc's view of its heap, in KiB; None without glibc 2.33+."""
    try:
        call = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = MallInfo2
    info = call()
    return {
        "arena": info.arena >> 10,
        "in_use": info.uordblks >> 10,
        "free": info.fordblks >> 10,
        "mmapped": info.hblkhd >> 10,
    }


def maps_kib() -> dict[str, int]:
    """Resident KiB of this process by kind of mapping, from /proc/self/smaps."""
    kinds = {"heap": 0, "anon": 0, "stack": 0, "file": 0}
    kind = "anon"
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                fields = line.split()
                name = fields[5] if len(fields) > 5 else ""
                if name == "[heap]":
                    kind = "heap"
                elif name.startswith("[stack"):
                    kind = "stack"
                elif name.startswith("/"):
                    kind = "file"
                else:
                    kind = "anon"
            elif head == "Rss:":
                kinds[kind] += int(line.split()[1])
    return kinds


_ARENAS = {
    "arenas_in_use": re.compile(r"# arenas allocated current\s*=\s*([\d,]+)"),
    "arenas_highwater": re.compile(r"# arenas highwater mark\s*=\s*([\d,]+)"),
    "bytes_in_use": re.compile(r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
    "bytes_free_in_pools": re.compile(r"# bytes in available blocks\s*=\s*([\d,]+)"),
    "unused_pools": re.compile(r"(\d+) unused pools"),
}


def pymalloc() -> dict[str, int]:
    """pymalloc's arenas and blocks, parsed from what ``sys._debugmallocstats()`` writes to fd 2."""
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    found: dict[str, int] = {}
    for key, pattern in _ARENAS.items():
        match = pattern.search(text)
        if match:
            found[key] = int(match.group(1).replace(",", ""))
    return found


def object_counts(top: int = 40) -> dict[str, int]:
    """The ``top`` most numerous kinds of objects the garbage collector tracks
    (containers and instances: not str, bytes, int), by module and class name."""
    import gc
    from collections import Counter

    counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    return dict(counts.most_common(top))


def sample(types: bool = False) -> dict[str, Any]:
    with open("/proc/self/statm") as f:
        rss_pages = int(f.read().split()[1])
    found: dict[str, Any] = {
        "time": time.time(),
        "rss_kib": rss_pages * os.sysconf("SC_PAGE_SIZE") >> 10,
        "maps": maps_kib(),
        "malloc": malloc_kib(),
        "pymalloc": pymalloc(),
    }
    if types:
        found["objects"] = object_counts()
    return found


def main() -> None:
    path = os.environ["LOOPDASH_HEAP_LOG"]
    every = float(os.environ.get("LOOPDASH_HEAP_EVERY", "30"))
    # Counting objects walks every one of them, holding the interpreter (tens of ms).
    types = os.environ.get("LOOPDASH_HEAP_TYPES") == "1"

    def keep_writing() -> None:
        while True:
            time.sleep(every)
            line = json.dumps(sample(types))
            with open(path, "a") as f:
                f.write(line + "\n")

    threading.Thread(target=keep_writing, name="heap-sampler", daemon=True).start()
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()

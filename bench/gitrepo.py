"""A git repository of any size, made with ``git fast-import`` (10,000 commits in a few seconds).

    python -m bench.gitrepo /tmp/repo10k --commits 10000 [--big-diff-mb 1]

Each commit edits one to three of 200 source files (a few lines changed, a few
added), with a ralph-style subject naming a story ("feat: US-042 ..."). The
commit before the last rewrites a file of ``--big-diff-mb`` megabytes, so the
commit detail of a 1 MB diff can be measured; the last commit is small. It prints
the facts (HEAD, the big commit's sha) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from typing import Any

FILES = 200
LINES = 40


def _blob(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def generate(path: str, commits: int, big_diff_mb: float = 1.0, seed: int = 7) -> dict[str, Any]:
    """Make a repository of ``commits`` commits at ``path`` (which must not exist or be empty)."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True)
    rng = random.Random(seed)
    files = {f"src/module_{i:03d}.py": [f"# module {i} line {n}" for n in range(LINES)] for i in range(FILES)}
    stream: list[bytes] = []
    when = 1_700_000_000
    big_at = commits - 1 if big_diff_mb > 0 and commits >= 2 else -1
    for number in range(1, commits + 1):
        when += 60
        story = f"US-{rng.randrange(1, 300):03d}"
        message = f"feat: {story} step {number}\n\nChanged by the benchmark generator.\n".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"mark :%d\n" % number)
        stream.append(b"committer Bench Loop <loop@example.invalid> %d +0000\n" % when)
        stream.append(_data(message))
        if number > 1:
            stream.append(b"from :%d\n" % (number - 1))
        if number == 1:
            for name, lines in files.items():
                stream.append(f"M 100644 inline {name}\n".encode() + _data(_blob(lines)))
        elif number == big_at:
            line = "x" * 79
            # 81 bytes a line in the patch ("+" and the line): a patch of big_diff_mb million bytes.
            count = int(big_diff_mb * 1_000_000) // 81
            payload = _blob([f"{n:08d}{line[8:]}" for n in range(count)])
            stream.append(b"M 100644 inline data/big.txt\n" + _data(payload))
        else:
            for name in rng.sample(sorted(files), rng.randrange(1, 4)):
                lines = files[name]
                for _ in range(rng.randrange(1, 4)):
                    lines[rng.randrange(len(lines))] = f"# edited in commit {number} {rng.random():.6f}"
                lines.extend(f"# added in commit {number} {k}" for k in range(rng.randrange(0, 3)))
                stream.append(f"M 100644 inline {name}\n".encode() + _data(_blob(lines)))
        stream.append(b"\n")
    subprocess.run(["git", "-C", path, "fast-import", "--quiet"], input=b"".join(stream), check=True)
    subprocess.run(["git", "-C", path, "checkout", "-q", "-f", "main"], check=True)
    head = subprocess.run(
        ["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    big = subprocess.run(
        ["git", "-C", path, "rev-parse", "HEAD~1"], capture_output=True, text=True, check=False
    )
    return {"path": path, "commits": commits, "head": head.stdout.strip(), "big_commit": big.stdout.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--big-diff-mb", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(json.dumps(generate(args.path, args.commits, args.big_diff_mb)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

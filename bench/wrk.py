"""Run Debian's ``wrk`` pinned to a core and read its report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class WrkResult:
    url: str
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: str
    #: The server's CPU time per request over the run, when the caller measured it.
    cpu_us_per_request: float = 0.0

    @property
    def clean(self) -> bool:
        return self.non_2xx == 0 and not self.socket_errors


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(url: str, output: str) -> WrkResult:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.M)
    if not (rate and total and p50 and p99 and latency):
        raise RuntimeError(f"cannot read wrk's report for {url}:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:\s+(.*)", output)
    return WrkResult(
        url=url,
        requests=int(total.group(1)),
        requests_per_s=float(rate.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        max_ms=_ms(latency.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
    )


def available() -> bool:
    return shutil.which("wrk") is not None and shutil.which("taskset") is not None


def run(
    url: str, token: str | None, seconds: float, cpu: int, threads: int = 2, connections: int = 16
) -> WrkResult:
    argv = [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    argv.append(url)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(url, done.stdout)

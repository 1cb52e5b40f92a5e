"""``loopdash demo``: a simulated loop in a temporary project, served live.

What a newcomer runs first: it needs no real loop, and shows every part of
the dashboard moving (stories passing, iterations, logs, runs finishing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from loopdash.cli.sample import create_sample_project
from loopdash.cli.simulator import LoopSimulator
from loopdash.server.service import DashboardConfig, build_dashboard, tcp_endpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="TCP port to serve on (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="how fast the simulated loop works (2 = twice as fast)"
    )
    parser.add_argument(
        "--root",
        default=None,
        help="directory for the demo project (default: a temporary one, removed at exit)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request, not only warnings")


def run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    if args.speed <= 0:
        print("loopdash demo: --speed must be positive", file=sys.stderr)
        return 2
    temporary = args.root is None
    root = tempfile.mkdtemp(prefix="loopdash-demo-") if temporary else os.path.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    # Past runs to browse (an old flat-shape run, a finished one, a crashed one).
    create_sample_project(root)

    level = LogLevel.info if args.verbose else LogLevel.warn
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(level)])],
        redirectStandardIO=False,
    )
    config = DashboardConfig(root=root, listen=tcp_endpoint(args.port, args.host))
    dashboard = build_dashboard(config, reactor)
    try:
        dashboard.service.startService()
    except CannotListenError as e:
        print(
            f"loopdash demo: cannot listen on {args.host}:{args.port} ({e.socketError}); "
            f"choose another port with --port",
            file=sys.stderr,
        )
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        return 1

    simulator = LoopSimulator(root, reactor, speed=args.speed)
    simulator.start()
    with open(config.token_path) as f:
        token = f.read().strip()

    def announce(port: object) -> None:
        bound = port.getHost().port  # type: ignore[attr-defined]
        url = f"http://{args.host}:{bound}"
        print(
            f"loopdash demo: a simulated loop is working in {root}\n"
            f"  dashboard:  {url}/#token={token}\n"
            f"  token:      {token}  (in {config.token_path})\n"
            f"  try:        curl -H 'Authorization: Bearer {token}' {url}/api/status\n"
            f"  live:       curl -N -H 'Authorization: Bearer {token}' {url}/api/stream\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )

    dashboard.web.when_listening().addCallback(announce)

    def shut_down() -> None:
        simulator.stop()
        dashboard.service.stopService()

    reactor.addSystemEventTrigger("before", "shutdown", shut_down)
    reactor.run()
    if temporary:
        shutil.rmtree(root, ignore_errors=True)
    return 0

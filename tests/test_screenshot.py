"""tools/screenshot.py makes the README's picture from `loopdash demo` in Debian's Chromium.

Run here into a temporary file, so the picture committed as docs/screenshot.png
can always be made again (``python -m tools.screenshot``).
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

from tests.browser_support import require_chromium

ROOT = Path(__file__).resolve().parent.parent


def test_the_tool_shoots_the_demo_mid_run_at_desktop_width(tmp_path: Path) -> None:
    require_chromium()
    out = tmp_path / "screenshot.png"
    made = subprocess.run(
        [sys.executable, "-m", "tools.screenshot", "--out", str(out), "--speed", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    # The viewport's width, down to the bottom of the charts: taller than one screen.
    assert width == 1280 and height > 800, (width, height)

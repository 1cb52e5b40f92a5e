"""The README's picture: ``loopdash demo`` in Debian's Chromium, saved as a PNG.

    python -m tools.screenshot [--out docs/screenshot.png]

Runs the demo loop (``loopdash demo`` in a temporary project) as a subprocess,
waits through the daemon's API until the simulated loop has finished a few
stories of its run, opens the page in ``/usr/bin/chromium`` through Playwright
(never a downloaded browser) and saves it from the top down to the charts. It fails, writing
nothing, if the page is not live or logs an error. tests/test_screenshot.py
runs it, so the picture can always be made again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS
from tests.processes import START_TIMEOUT, free_port, stop_process, wait_until_healthy

#: The first screen of a laptop's browser window, in CSS pixels.
VIEWPORT = {"width": 1280, "height": 800}
#: Bound on every wait, in seconds (the demo runs faster than real time, see --speed).
WAIT = 60.0


#: The page is shot mid-run: running, with at least this many iterations charted ...
ITERATIONS = 4
#: ... and stories still to do, so every colour of the story grid shows.
PAGE_IS_MID_RUN = """([iterations, total]) => {
    const state = document.querySelector('#run-state')?.dataset.state;
    const marks = document.querySelectorAll("[data-chart='cost'] svg .mark").length;
    const done = document.querySelectorAll("#story-grid li[data-state='completed']").length;
    return state === 'running' && marks >= iterations && done <= total - 2;
}"""


def shoot(out: str, speed: float, color_scheme: str) -> None:
    """Run the demo, open the page, wait until it is mid-run, write the PNG at ``out``."""
    from playwright.sync_api import expect, sync_playwright

    root = tempfile.mkdtemp(prefix="loopdash-screenshot-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    errors: list[str] = []
    with sync_playwright() as playwright:
        # The browser first: the demo's loop starts working the moment it starts.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        command = [sys.executable, "-m", "loopdash.cli", "demo", "--port", str(port), "--root", root]
        demo = subprocess.Popen([*command, "--speed", str(speed)], stdout=subprocess.DEVNULL)
        try:
            wait_until_healthy(url, demo, timeout=START_TIMEOUT)
            with open(os.path.join(root, ".claude-loop", "dashboard", "auth_token.txt")) as f:
                token = f.read().strip()
            context = browser.new_context(viewport=VIEWPORT, color_scheme=color_scheme)
            page = context.new_page()
            page.set_default_timeout(WAIT * 1000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/#token={token}")
            expect(page.locator("#connection-state")).to_have_text("Live", timeout=WAIT * 1000)
            total = len(page.locator("#story-grid li").all()) or 8
            page.wait_for_function(PAGE_IS_MID_RUN, arg=[ITERATIONS, total], polling=100)
            # Notification toasts would cover the stories: the picture is of the page itself.
            page.evaluate("document.getElementById('toasts').style.display = 'none'")
            charts = page.locator("#charts").bounding_box()
            if errors or charts is None:
                raise SystemExit(f"screenshot: the page logged errors or has no charts: {errors}")
            bottom = charts["y"] + charts["height"] + 16
            page.screenshot(
                path=out,
                full_page=True,
                clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": bottom},
            )
        finally:
            browser.close()
            stop_process(demo)
            shutil.rmtree(root, ignore_errors=True)
    print(f"screenshot: {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshot", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/screenshot.png", help="where to write the PNG")
    parser.add_argument("--speed", type=float, default=2.0, help="the demo's --speed (default 2)")
    parser.add_argument("--color-scheme", choices=["light", "dark"], default="light")
    args = parser.parse_args(argv)
    shoot(args.out, args.speed, args.color_scheme)
    return 0


if __name__ == "__main__":
    sys.exit(main())

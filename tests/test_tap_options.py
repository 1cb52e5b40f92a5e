"""The twistd plugin's options reach the daemon's configuration."""

from __future__ import annotations

from typing import Any

from loopdash.server.tap import Options


def test_inotify_is_on_by_default_and_no_inotify_turns_it_off(tmp_path: Any) -> None:
    options = Options()
    options.parseOptions(["--root", str(tmp_path)])
    assert options.config().use_inotify is True
    options = Options()
    options.parseOptions(["--root", str(tmp_path), "--no-inotify", "--poll-interval", "0.5"])
    config = options.config()
    assert config.use_inotify is False
    assert config.poll_interval == 0.5

"""Issue 17's rules in small: bounded reads, whose dashboard a pid is, causes said once, logs across rotations."""

from __future__ import annotations

import os
from typing import Any

import pytest

from loopdash.cli.logtail import last_lines_across, rotated_files
from loopdash.client.dashboard import Disconnected
from loopdash.client.watch import DIM, UNDIM, View, apply, away_reason, describe, render_screen
from loopdash.local.procinfo import root_argument
from loopdash.local.smallfile import SmallFileError, read_small_file
from loopdash.local.token import TokenFile, read_token, token_file_problem, write_token

# -- bounded, non-blocking reads -------------------------------------------------------------------


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "fifo")
    os.mkfifo(path)
    with pytest.raises(SmallFileError) as refused:
        read_small_file(path, 64)
    assert refused.value.reason == "is a FIFO, not a regular file"
    assert str(refused.value) == f"{path} is a FIFO, not a regular file"


def test_a_file_larger_than_the_limit_is_refused_without_reading_it(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "huge")
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    with pytest.raises(SmallFileError, match="is 1073741824 bytes, more than the 4096 it may hold"):
        read_small_file(path, 4096)
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
    assert read_small_file(path, 4096) == b"x" * 4096


def test_a_directory_and_a_missing_file(tmp_path: Any) -> None:
    with pytest.raises(SmallFileError, match="is a directory, not a regular file"):
        read_small_file(str(tmp_path), 64)
    with pytest.raises(FileNotFoundError):
        read_small_file(os.path.join(str(tmp_path), "nothing"), 64)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: os.mkfifo(p, 0o600), "is a FIFO, not a regular file: make a new one"),
        (lambda p: os.mkdir(p, 0o700), "is a directory, not a regular file: make a new one"),
        (lambda p: write_token(p, " "), "is empty: make a new one"),
    ],
)
def test_token_file_problems_are_one_sentence(tmp_path: Any, make: Any, problem: str) -> None:
    path = os.path.join(str(tmp_path), "token")
    make(path)
    assert token_file_problem(path) == f"The token file {path} {problem} with `loopdash generate-token`."


def test_a_good_token_has_no_problem_and_reads_back(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "token")
    token = write_token(path)
    assert token_file_problem(path) is None
    assert read_token(path) == token
    assert token_file_problem(os.path.join(str(tmp_path), "missing")) is None  # created on start


# -- which project a dashboard serves ------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "root"),
    [
        (["twistd", "-n", "loopdash"], "."),
        (["twistd", "loopdash", "--root", "/p"], "/p"),
        (["twistd", "loopdash", "--root=/p"], "/p"),
        (["twistd", "loopdash", "-r", "rel"], "rel"),
        (["twistd", "loopdash", "-rrel"], "rel"),
        # --root is repeatable: the first one is the default project, whose folder holds the files.
        (["twistd", "--rundir", "/x", "loopdash", "--port", "1", "--root", "/a", "--root", "/b"], "/a"),
        (["python", "-c", "...", "--root", "/twistd-option", "loopdash"], "."),
    ],
)
def test_the_root_a_dashboard_command_line_serves(argv: list[str], root: str) -> None:
    assert root_argument(argv) == root


# -- the token file's problems, said once per cause ---------------------------------------------


def test_every_cause_of_refusing_requests_is_reported_once_and_again_when_it_changes(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "token")
    heard: list[str] = []
    tokens = TokenFile(path, on_problem=heard.append, on_recovered=lambda: heard.append("back"))
    for _ in range(3):
        assert tokens.current() is None
    os.mkfifo(path, 0o600)
    for _ in range(3):
        assert tokens.current() is None
    os.unlink(path)
    os.mkdir(path)
    for _ in range(3):
        assert tokens.current() is None
    os.rmdir(path)
    token = write_token(path)
    for _ in range(3):
        assert tokens.current() == token
    assert heard == [
        f"The token file {path} is missing: create one with `loopdash generate-token`.",
        f"The token file {path} is a FIFO, not a regular file: make a new one with `loopdash generate-token`.",
        f"The token file {path} is a directory, not a regular file: make a new one with `loopdash generate-token`.",
        "back",
    ]


# -- logs across rotated files -------------------------------------------------------------------


def test_last_lines_read_back_across_rotated_files(tmp_path: Any) -> None:
    log = os.path.join(str(tmp_path), "dashboard.log")
    for name, first in ((f"{log}.2", 0), (f"{log}.1", 10), (log, 20)):
        with open(name, "w") as f:
            f.writelines(f"line {n}\n" for n in range(first, first + (10 if name != log else 6)))
    assert rotated_files(log) == [f"{log}.1", f"{log}.2"]
    assert last_lines_across(log, 4) == [f"line {n}" for n in range(22, 26)]
    assert last_lines_across(log, 10) == [f"line {n}" for n in range(16, 26)]
    assert last_lines_across(log, 100) == [f"line {n}" for n in range(0, 26)]


# -- watch while the daemon is away -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            (
                "connection lost while reading the answer: Connection was closed cleanly; "
                "Chunked decoder in 'CHUNK_LENGTH' state, still expecting more data"
            ),
            "the dashboard closed the connection (stopped or restarting?)",
        ),
        (
            "cannot reach http://127.0.0.1:8080: Connection was refused by other side: 111: Connection refused",
            "connection refused",
        ),
        ("cannot reach http://127.0.0.1:8080: User timeout caused connection failure", "no answer in time"),
        ("the server ended the stream", "the server ended the stream"),
    ],
)
def test_the_reason_the_daemon_is_away_is_short_and_human(error: str, reason: str) -> None:
    assert away_reason(error) == reason
    assert describe(Disconnected(error, 1, 2.0)) == f"disconnected: {reason}; reconnecting in 2.0 s..."


def test_the_last_known_figures_are_dimmed_while_the_daemon_is_away() -> None:
    from tests.test_watch import status_event

    view = apply(View("http://d", headlines=0), status_event(), now=0.0)
    live = render_screen(view, 1.0, 120, dim=True)
    assert not any(DIM in line for line in live)

    view = apply(view, Disconnected("Connection was closed cleanly; Chunked decoder ...", 1, 3.0), now=1.0)
    away = render_screen(view, 5.0, 120, dim=True)
    assert away[0] == (
        "loopdash watch  http://d  reconnecting... (the dashboard closed the connection (stopped or restarting?))"
    )
    assert all(line.startswith(DIM) and line.endswith(UNDIM) for line in away[1:-1])
    assert away[-1] == "Ctrl-C to quit"
    # Not a terminal: the same words, no escape codes.
    assert not any(DIM in line for line in render_screen(view, 5.0, 120))

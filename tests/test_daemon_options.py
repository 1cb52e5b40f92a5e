"""One table of daemon options: ``twistd loopdash`` and ``loopdash start`` accept every one alike.

Each test runs over every row of :data:`DAEMON_OPTIONS`, so an option added
later is covered here without a new test.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from twisted.python import usage

from loopdash.cli import build_parser
from loopdash.cli.start import OWN_OPTIONS, daemon_choices, twistd_command
from loopdash.local.daemon import DaemonFiles, endpoint_address
from loopdash.server.options import DAEMON_OPTIONS, FLAG, REPEAT, DaemonOption, command_line
from loopdash.server.tap import Options

PASSED_THROUGH = [option for option in DAEMON_OPTIONS if option.name not in OWN_OPTIONS]


def parse_start(*arguments: str) -> Any:
    return build_parser().parse_args(["start", *arguments])


def given_by_user(option: DaemonOption) -> list[str]:
    if option.kind == FLAG:
        return [option.flag]
    assert option.example is not None, f"{option.flag} needs an example value in the table"
    return [option.flag, option.example]


def expected_value(option: DaemonOption) -> Any:
    if option.kind == FLAG:
        return True
    assert option.example is not None
    value = option.parse(option.example)
    if option.is_path:
        value = os.path.abspath(value)
    return [value] if option.kind == REPEAT else value


def plugin_options(root: str, arguments: list[str]) -> Options:
    options = Options()
    # postOptions checks the root and the token file, which these tests do not create.
    options.postOptions = lambda: None  # type: ignore[method-assign]
    options.parseOptions(["--root", root, *arguments])
    return options


def loopdash_arguments(command: list[str]) -> list[str]:
    """What twistd hands the plugin: everything after the ``loopdash`` subcommand."""
    return command[command.index("loopdash") + 1 :]


def test_every_daemon_option_has_an_example_and_a_help_text() -> None:
    for option in DAEMON_OPTIONS:
        assert option.help.strip(), option.name
        if option.kind != FLAG:
            assert option.example is not None, option.name
            option.parse(option.example)  # valid by the option's own rule


@pytest.mark.parametrize("option", DAEMON_OPTIONS, ids=lambda option: option.name)
def test_the_plugin_accepts_each_option(option: DaemonOption) -> None:
    options = plugin_options("/", given_by_user(option))
    assert options[option.name] == expected_value(option)


@pytest.mark.parametrize("option", PASSED_THROUGH, ids=lambda option: option.name)
def test_start_accepts_each_option_and_passes_it_through_to_twistd(option: DaemonOption) -> None:
    args = parse_start("--root", "/srv/p", *given_by_user(option))
    command = twistd_command(DaemonFiles("/srv/p"), daemon_choices(args))

    arguments = loopdash_arguments(command)
    assert option.flag in arguments
    parsed = plugin_options("/srv/p", arguments)
    assert parsed[option.name] == expected_value(option)
    assert parsed["root"] == "/srv/p"


def test_start_passes_nothing_the_user_did_not_give_so_the_daemons_defaults_apply() -> None:
    command = twistd_command(DaemonFiles("/srv/p"), daemon_choices(parse_start()))
    assert loopdash_arguments(command) == ["--root", "/srv/p"]
    defaults = plugin_options("/srv/p", loopdash_arguments(command))
    for option in PASSED_THROUGH:
        expected = option.default
        if option.kind == FLAG:
            expected = 0  # twistd's flags are 0/1
        elif option.kind == REPEAT:
            expected = []
        assert defaults[option.name] == expected, option.name


def test_repeated_options_pass_through_in_order() -> None:
    args = parse_start("--cors-origin", "https://a.example", "--cors-origin", "https://b.example")
    arguments = loopdash_arguments(twistd_command(DaemonFiles("/p"), daemon_choices(args)))
    assert arguments[-4:] == ["--cors-origin", "https://a.example", "--cors-origin", "https://b.example"]
    assert plugin_options("/p", arguments).config().cors_origins == ("https://a.example", "https://b.example")


def test_a_relative_token_file_is_made_absolute_against_the_users_directory() -> None:
    # twistd runs in the project directory: a relative path would name another file there.
    arguments = loopdash_arguments(
        twistd_command(DaemonFiles("/p"), daemon_choices(parse_start("--token-file", "t.txt")))
    )
    assert arguments[arguments.index("--token-file") + 1] == os.path.join(os.getcwd(), "t.txt")


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--stale-after", "0"], "--stale-after must be a positive number of seconds, not '0'"),
        (["--stale-after", "soon"], "--stale-after must be a positive number of seconds, not 'soon'"),
        (["--port", "70000"], "--port must be a whole number from 0 to 65535, not '70000'"),
        (["--auth-failures", "0"], "--auth-failures must be a whole number at least 1, not '0'"),
        (["--log-format", "xml"], "--log-format must be one of text, json, not 'xml'"),
    ],
)
def test_both_parsers_refuse_a_bad_value_with_the_same_reason(
    arguments: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(usage.UsageError) as refused:
        Options().parseOptions(["--root", "/", *arguments])
    assert str(refused.value) == reason

    with pytest.raises(SystemExit) as exited:
        parse_start(*arguments)
    assert exited.value.code == 2
    flag, rest = reason.split(" ", 1)
    [message] = capsys.readouterr().err.splitlines()  # one line, no usage block before it
    assert message.startswith(f"loopdash start: argument {flag}")  # "--port/-p" for a short name too
    assert message.endswith(f": {rest} (`loopdash start --help` lists the options)")


def test_command_line_leaves_out_what_was_notdaemon_choices() -> None:
    assert command_line({"port": None, "metrics-public": False, "cors-origin": None}) == []
    assert command_line({"stale-after": 0.1, "metrics-public": True}) == [
        "--stale-after",
        "0.1",
        "--metrics-public",
    ]


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("tcp:8080", "http://127.0.0.1:8080"),
        ("tcp:port=8081:interface=127.0.0.1", "http://127.0.0.1:8081"),
        ("tcp6:8082:interface=\\:\\:1", "http://[::1]:8082"),
        ("ssl:8443:privateKey=key.pem:certKey=cert.pem", "https://127.0.0.1:8443"),
        ("unix:/tmp/dash.sock", None),
        ("tcp:0", None),
    ],
)
def test_endpoint_address(endpoint: str, url: str | None) -> None:
    found = endpoint_address(endpoint)
    assert (found.url if found else None) == url

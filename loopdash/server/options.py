"""The daemon's options, declared once: ``twistd loopdash`` and ``loopdash start`` are built from here.

:data:`DAEMON_OPTIONS` is a table of :class:`DaemonOption`. The twistd plugin
(:mod:`loopdash.server.tap`) turns it into ``optParameters``, ``optFlags`` and
one ``opt_`` handler per repeatable option; ``loopdash start``
(:mod:`loopdash.cli.start`) turns it into argparse arguments and passes every
option the user gave through to the twistd command line. Adding an option to
the daemon is one row here, plus reading it in ``tap.Options.config``.

Converters raise ValueError with a short reason ("must be a positive number
of seconds, not 'x'"); each parser names the option in front of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loopdash.derive.notify import DEFAULT_FAILURE_STREAK
from loopdash.derive.notify import KINDS as NOTIFICATION_KINDS
from loopdash.derive.status import DEFAULT_STALE_AFTER, DEFAULT_STALL_AFTER
from loopdash.loop.formats import layout_names
from loopdash.loop.gitrepo import DEFAULT_FILE_DIFF_CAP
from loopdash.loop.progress import MAX_ENTRY_BYTES
from loopdash.server.limits import DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_DEADLINE
from loopdash.server.logformat import LOG_FORMATS

VALUE = "value"
FLAG = "flag"
#: A value option that may be given several times; its value is the list of them.
REPEAT = "repeat"

Converter = Callable[[str], Any]


@dataclass(frozen=True)
class DaemonOption:
    """One option of the daemon.

    ``name`` is the long name without dashes (``stale-after``); ``kind`` is
    :data:`VALUE`, :data:`FLAG` or :data:`REPEAT`; ``convert`` turns the text
    into the value (raising ValueError with the reason it is not valid);
    ``default`` is the value when the option is not given (False for a flag,
    the empty list for a repeatable option).
    """

    name: str
    help: str
    kind: str = VALUE
    default: Any = None
    convert: Converter | None = None
    short: str | None = None
    metavar: str | None = None
    #: A valid value, for the tests that check every option reaches the daemon (not for flags).
    example: str | None = None
    #: A file path: ``loopdash start`` makes it absolute, since twistd runs in the project directory.
    is_path: bool = False

    @property
    def flag(self) -> str:
        """The option as typed: ``--stale-after``."""
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        """The option as a Python identifier: ``stale_after``."""
        return self.name.replace("-", "_")

    def parse(self, text: str) -> Any:
        """The value of ``text``; ValueError with a one-line reason when it is not valid."""
        return text if self.convert is None else self.convert(text)


def positive_seconds() -> Converter:
    """A converter to a positive number of seconds."""

    def convert(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise ValueError(f"must be a positive number of seconds, not {text!r}")
        return number

    convert.__name__ = "seconds"
    return convert


def integer_between(low: int, high: int | None = None) -> Converter:
    """A converter to an integer in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def convert(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be a whole number {bound}, not {text!r}")
        return number

    convert.__name__ = "integer"
    return convert


def one_of(choices: Sequence[str]) -> Converter:
    """A converter accepting only ``choices``."""

    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {text!r}")
        return text

    convert.__name__ = "choice"
    return convert


def project_budget(text: str) -> tuple[str, float]:
    """``ID=USD`` as ``(id, dollars)``: one project's own budget; ValueError when malformed."""
    ident, sep, amount = text.partition("=")
    if not sep or not ident.strip():
        raise ValueError(f"must be PROJECT_ID=USD, not {text!r}")
    return ident.strip(), positive_usd()(amount)


#: A --remote NAME: what a local id never holds (``~``) stays out, so ``NAME~<id>`` is unambiguous.
_MACHINE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def named_value(text: str, what: str) -> tuple[str, str]:
    """``NAME=VALUE`` as ``(name, value)``; ValueError when the name is not a machine name."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not value.strip():
        raise ValueError(f"must be NAME={what}, not {text!r}")
    if not _MACHINE.match(name):
        raise ValueError(f"the name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    return name, value.strip()


def remote_url() -> Converter:
    """A converter checking ``NAME=URL`` (an http or https URL); the value is ``NAME=URL`` as text
    (split it with :func:`named_value`), so ``loopdash start`` passes it on as given."""

    def convert(text: str) -> str:
        name, url = named_value(text, "URL")
        if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
            raise ValueError(f"the URL of {name!r} must start with http:// or https://, not {url!r}")
        return f"{name}={url.rstrip('/')}"

    convert.__name__ = "remote_url"
    return convert


def remote_path() -> Converter:
    """A converter for ``NAME=PATH``: the value is ``NAME=<absolute path>`` as text, made absolute
    where it is given (``loopdash start`` runs twistd in another directory)."""

    def convert(text: str) -> str:
        name, path = named_value(text, "PATH")
        return f"{name}={os.path.abspath(os.path.expanduser(path))}"

    convert.__name__ = "remote_path"
    return convert


def project_usd() -> Converter:
    """A converter checking ``ID=USD`` (see :func:`project_budget`); the text is kept as given."""

    def convert(text: str) -> str:
        project_budget(text)
        return text

    convert.__name__ = "project_usd"
    return convert


def positive_usd() -> Converter:
    """A converter to a positive amount of US dollars."""

    def convert(text: str) -> float:
        try:
            number = float(text.strip().removeprefix("$"))
        except ValueError:
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise ValueError(f"must be a positive amount of US dollars, not {text!r}")
        return number

    convert.__name__ = "usd"
    return convert


def notification_kinds() -> Converter:
    """A converter checking ``run_finished,run_stalled`` (or ``all``): the kinds, comma-separated."""

    def convert(text: str) -> str:
        words = [word.strip() for word in text.split(",") if word.strip()]
        if words == ["all"]:
            return ",".join(NOTIFICATION_KINDS)
        unknown = [word for word in words if word not in NOTIFICATION_KINDS]
        if unknown or not words:
            raise ValueError(
                f"must be 'all' or a comma-separated list of {', '.join(NOTIFICATION_KINDS)}, not {text!r}"
            )
        # Text again (normalised), so `loopdash start` can pass it on to twistd as it is.
        return ",".join(word for word in NOTIFICATION_KINDS if word in words)

    convert.__name__ = "kinds"
    return convert


DAEMON_OPTIONS: tuple[DaemonOption, ...] = (
    DaemonOption(
        "port",
        "TCP port to listen on.",
        default=8080,
        convert=integer_between(0, 65535),
        short="p",
        metavar="PORT",
        example="8181",
    ),
    DaemonOption(
        "host",
        "Interface to listen on (0.0.0.0 for every interface).",
        default="127.0.0.1",
        metavar="ADDRESS",
        example="::1",
    ),
    DaemonOption(
        "root",
        (
            "Project directory holding prd.json, progress.txt and .claude-loop/; repeatable: "
            "each one is served, the first by the plain /api/... routes (docs/projects.md)."
        ),
        default=".",
        short="r",
        metavar="DIRECTORY",
        example="/srv/project",
    ),
    DaemonOption(
        "scan",
        (
            "Serve every loop project found below this directory, of any family, noticing "
            "projects created and removed while running (repeatable; docs/projects.md)."
        ),
        kind=REPEAT,
        metavar="DIRECTORY",
        example="/srv/loops",
        is_path=True,
    ),
    DaemonOption(
        "scan-depth",
        "Levels below a --scan directory searched for projects (the directory itself is level 0).",
        default=3,
        convert=integer_between(0, 32),
        metavar="LEVELS",
        example="5",
    ),
    DaemonOption(
        "scan-interval",
        (
            "Seconds between rescans of the --scan directories (inotify on them notices most "
            "projects created or removed at once; this is the fallback)."
        ),
        default=10.0,
        convert=positive_seconds(),
        metavar="SECONDS",
        example="30",
    ),
    DaemonOption(
        "remote",
        (
            "Show the projects of another loopdash daemon beside this one's, NAME=URL "
            "(repeatable; with --remote-token-file NAME=PATH; docs/projects.md)."
        ),
        kind=REPEAT,
        convert=remote_url(),
        metavar="NAME=URL",
        example="buildbox=http://127.0.0.1:8081",
    ),
    DaemonOption(
        "remote-token-file",
        "The file holding the API token of the --remote daemon NAME, NAME=PATH (one per --remote).",
        kind=REPEAT,
        convert=remote_path(),
        metavar="NAME=PATH",
        example="buildbox=/etc/loopdash/buildbox.token",
    ),
    DaemonOption(
        "listen",
        (
            "Twisted endpoint string to listen on instead of --host/--port, e.g. "
            "tcp:8080:interface=0.0.0.0 or ssl:8443:privateKey=key.pem:certKey=cert.pem."
        ),
        metavar="ENDPOINT",
        example="tcp:8282:interface=127.0.0.1",
    ),
    DaemonOption(
        "token-file",
        (
            "API token file (default: <root>/.claude-loop/dashboard/auth_token.txt; with --scan, "
            "<first scan directory>/.loopdash/auth_token.txt)."
        ),
        metavar="PATH",
        example="/etc/loopdash/token",
        is_path=True,
    ),
    DaemonOption(
        "stale-after",
        "Seconds without activity after which a run without summary.json counts as stopped.",
        default=DEFAULT_STALE_AFTER,
        convert=positive_seconds(),
        metavar="SECONDS",
        example="7.5",
    ),
    DaemonOption(
        "stall-after",
        (
            "Seconds without activity after which an unfinished run counts as stalled "
            "(it is still live until --stale-after; see docs/liveness.md)."
        ),
        default=DEFAULT_STALL_AFTER,
        convert=positive_seconds(),
        metavar="SECONDS",
        example="90",
    ),
    DaemonOption(
        "poll-interval",
        (
            "Seconds between polls of the loop's files (default: 1, or 10 while inotify "
            "is watching every directory that matters, since it reports changes at once)."
        ),
        convert=positive_seconds(),
        metavar="SECONDS",
        example="0.25",
    ),
    DaemonOption(
        "log-format",
        "Log format: text, or json (one JSON object per line, for log shippers).",
        default="text",
        convert=one_of(LOG_FORMATS),
        metavar="FORMAT",
        example="json",
    ),
    DaemonOption(
        "log-keep",
        (
            "Rotated log files to keep beside the log (it rotates at 1 MB and on SIGUSR1); "
            "older ones are deleted."
        ),
        default=5,
        convert=integer_between(0),
        metavar="COUNT",
        example="3",
    ),
    DaemonOption(
        "keepalive",
        "Seconds between keepalive comments on open event streams.",
        default=30.0,
        convert=positive_seconds(),
        metavar="SECONDS",
        example="12",
    ),
    DaemonOption(
        "idle-timeout",
        "Seconds a connection may stay idle between requests before it is closed.",
        default=60.0,
        convert=positive_seconds(),
        metavar="SECONDS",
        example="90",
    ),
    DaemonOption(
        "auth-failures",
        (
            "Failed authentications allowed from one address before it gets 429 "
            "(they are forgiven at one per second; valid tokens are always served)."
        ),
        default=30,
        convert=integer_between(1),
        metavar="COUNT",
        example="5",
    ),
    DaemonOption(
        "max-entry-bytes",
        (
            "Bytes of one progress.txt entry served by /api/logs or sent on the stream at "
            "most; a longer entry is cut there and marked truncated, with its full size."
        ),
        default=MAX_ENTRY_BYTES,
        convert=integer_between(1024),
        metavar="BYTES",
        example="4096",
    ),
    DaemonOption(
        "cors-origin",
        "Origin allowed to read answers from a browser (repeatable; default: any, '*').",
        kind=REPEAT,
        metavar="ORIGIN",
        example="https://ci.example.org",
    ),
    DaemonOption(
        "allowed-host",
        (
            "Host name (or address) the daemon answers to besides localhost, 127.0.0.1, [::1], "
            "the listen address and, when listening beyond loopback, this machine's name and any "
            "IP address; other Hosts get 421 (repeatable; '*' answers any Host: only behind a "
            "proxy that checks it)."
        ),
        kind=REPEAT,
        metavar="NAME",
        example="dash.example.org",
    ),
    DaemonOption(
        "max-connections",
        "Open connections (event streams included) past which new ones are answered 503.",
        default=DEFAULT_MAX_CONNECTIONS,
        convert=integer_between(1),
        metavar="COUNT",
        example="300",
    ),
    DaemonOption(
        "request-deadline",
        "Seconds a request's head (and body) may take to arrive once begun; slower ones get 408.",
        default=DEFAULT_REQUEST_DEADLINE,
        convert=positive_seconds(),
        metavar="SECONDS",
        example="5",
    ),
    DaemonOption(
        "notify",
        (
            "Send notifications to this Apprise URL (repeatable), e.g. json://127.0.0.1:9000/hook or "
            "ntfy://my-topic. A URL holding a secret belongs in a --notify-config file instead: "
            "every user of this machine can read a process's arguments."
        ),
        kind=REPEAT,
        metavar="URL",
        example="json://127.0.0.1:9000/hook",
    ),
    DaemonOption(
        "notify-config",
        "Apprise configuration file (text or YAML) of notification URLs, private to you (mode 0600); repeatable.",
        kind=REPEAT,
        metavar="PATH",
        example="/etc/loopdash/notify.yml",
        is_path=True,
    ),
    DaemonOption(
        "notify-kinds",
        (
            "Which notifications fire: 'all' or a comma-separated list of "
            + ", ".join(NOTIFICATION_KINDS)
            + " (default: all but story_completed)."
        ),
        convert=notification_kinds(),
        metavar="KINDS",
        example="run_finished,run_stalled",
    ),
    DaemonOption(
        "budget",
        "The run's budget in US dollars: notify at 80% and when it is passed, and show it on the page.",
        convert=positive_usd(),
        metavar="USD",
        example="25",
    ),
    DaemonOption(
        "project-budget",
        "One project's own budget on a multi-project daemon, PROJECT_ID=USD (repeatable): "
        "it takes the place of --budget for that project (docs/projects.md).",
        kind=REPEAT,
        convert=project_usd(),
        metavar="ID=USD",
        example="api=10",
    ),
    DaemonOption(
        "failure-streak",
        "Failed iterations in a row that make a failure-streak notification.",
        default=DEFAULT_FAILURE_STREAK,
        convert=integer_between(1),
        metavar="COUNT",
        example="4",
    ),
    DaemonOption(
        "public-url",
        "The page's address as people open it (put in every notification); default: the listen address.",
        metavar="URL",
        example="https://loops.example.org/",
    ),
    DaemonOption(
        "layout",
        (
            "Loop family whose files to read, instead of the one detected from what is on disk: "
            + ", ".join(layout_names())
            + " (see docs/loop-families.md)."
        ),
        convert=one_of(layout_names()),
        metavar="NAME",
        example="ralph",
    ),
    DaemonOption(
        "prd",
        "The plan file, relative to --root, when it is not where the loop family keeps it.",
        metavar="PATH",
        example="tasks/prd.json",
    ),
    DaemonOption(
        "progress",
        "The progress log, relative to --root, when it is not where the loop family keeps it.",
        metavar="PATH",
        example="notes/progress.md",
    ),
    DaemonOption(
        "git-diff-cap",
        (
            "Bytes of one file's diff in a commit's detail (GET /api/commits/<sha>) before it is cut "
            "and marked truncated; a commit's diffs together stop at four times this."
        ),
        default=DEFAULT_FILE_DIFF_CAP,
        convert=integer_between(1024, 64 << 20),
        metavar="BYTES",
        example="65536",
    ),
    DaemonOption("no-inotify", "Poll only: do not use inotify to notice file changes at once.", kind=FLAG),
    DaemonOption(
        "no-git",
        "Do not read the project's git repository (no commits, diffs or working tree).",
        kind=FLAG,
    ),
    DaemonOption(
        "metrics-public",
        "Serve /metrics without the bearer token, for a Prometheus scraper on this host.",
        kind=FLAG,
    ),
)


def daemon_option(name: str) -> DaemonOption:
    """The row of :data:`DAEMON_OPTIONS` named ``name`` (KeyError when there is none)."""
    for option in DAEMON_OPTIONS:
        if option.name == name:
            return option
    raise KeyError(name)


def command_line(given: dict[str, Any], options: Sequence[DaemonOption] = DAEMON_OPTIONS) -> list[str]:
    """The daemon's arguments for the options in ``given`` (name -> value), in table order.

    A value of None (or False for a flag, an empty list for a repeatable
    option) means "not given" and adds nothing, so the daemon's own default
    applies. Values are passed as text, never through a shell.
    """
    arguments: list[str] = []
    for option in options:
        value = given.get(option.name)
        if value is None or value is False:
            continue
        if option.kind == FLAG:
            arguments.append(option.flag)
        elif option.kind == REPEAT:
            for item in value:
                arguments += [option.flag, str(item)]
        else:
            arguments += [option.flag, _text(value)]
    return arguments


def _text(value: Any) -> str:
    # repr keeps every digit of a float ("0.1", not a rounded "%g").
    return repr(value) if isinstance(value, float) else str(value)

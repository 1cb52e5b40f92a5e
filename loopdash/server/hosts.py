"""Which names the daemon answers to: the Host allow-list against DNS rebinding.

A hostile web page can point its own name at 127.0.0.1 (DNS rebinding); the
browser then treats our answers as that page's own, same origin, no CORS
needed. What it cannot change is the ``Host`` header, which still names the
page's domain. So every request whose Host is not one of ours is refused (421)
before any route runs. An IP address cannot be rebound (the page's origin *is*
that address), so when the daemon listens beyond loopback, where it is reached
at whichever address the machine has, any IP-literal Host is accepted too.

Pure functions and one immutable policy; no sockets here except
:func:`machine_names`, which the wiring calls once.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

#: Always allowed: the loopback names a local browser uses.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: ``--allowed-host '*'``: answer any Host (behind a proxy that checks it itself).
ANY_HOST = "*"


class BadHost(ValueError):
    """A Host header that is not ``name[:port]`` or ``[v6-address][:port]``."""


def host_name(value: bytes) -> str:
    """The name of a Host header value (or a request-target's authority), lowercased, port dropped.

    ``localhost:8080`` -> ``localhost``; ``[::1]:80`` -> ``::1``; a trailing dot
    (``localhost.``) is dropped, as DNS ignores it. Raises :class:`BadHost` for
    anything else (userinfo, two colons outside brackets, a non-numeric port,
    non-ASCII): RFC 9110 §7.2 and RFC 3986 §3.2.2.
    """
    try:
        text = value.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        raise BadHost("not ASCII") from None
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise BadHost("unclosed bracket")
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise BadHost("not an IPv6 address") from None
    else:
        name, _, port = text.partition(":")
        rest = ":" + port if _ else ""
        if not re.fullmatch(r"[a-z0-9._~!$&'()*+,;=%-]*", name):
            raise BadHost("not a host name")
    if rest and not re.fullmatch(r":[0-9]{0,5}", rest):
        raise BadHost("not a port")
    name = name.rstrip(".") if name != "." else name
    if not name:
        raise BadHost("empty")
    return name


def normalise(name: str) -> str:
    """A configured name as :func:`host_name` reads it (``[::1]`` and ``::1`` alike)."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(interface: str) -> bool:
    """Whether an interface (an address or a name) reaches only this machine."""
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def listen_interface(listen: str) -> str | None:
    """The interface of a ``tcp:``/``ssl:`` endpoint string ("" for every interface); None for others.

    ``tcp:8080:interface=127.0.0.1`` -> ``127.0.0.1``; ``tcp:8080`` -> ``""``;
    ``tcp:8080:interface=\\:\\:1`` -> ``::1``; ``unix:/run/x.sock`` -> None.
    """
    kind = listen.split(":", 1)[0].lower()
    if kind not in ("tcp", "tcp6", "ssl"):
        return None
    match = re.search(r"(?:^|:)interface=((?:\\.|[^:\\])*)", listen)
    if match is None:
        return "::" if kind == "tcp6" else ""
    return re.sub(r"\\(.)", r"\1", match.group(1))


def machine_names() -> tuple[str, ...]:
    """This machine's names as a browser on the LAN might use them (no DNS lookup)."""
    name = socket.gethostname().lower().rstrip(".")
    if not name:
        return ()
    short = name.split(".", 1)[0]
    return tuple(dict.fromkeys((name, short, short + ".local")))


@dataclass(frozen=True)
class HostPolicy:
    """The names this daemon answers to; :meth:`allows` is the check."""

    names: frozenset[str]
    #: Accept any IP-literal Host (the daemon listens beyond loopback).
    any_address: bool = False
    any_host: bool = False

    @classmethod
    def build(
        cls, listen: str, allowed: Iterable[str] = (), names_of_machine: Iterable[str] | None = None
    ) -> HostPolicy:
        """The defaults for ``listen`` plus ``allowed`` (``--allowed-host``, ``*`` for any)."""
        configured = [normalise(name) for name in allowed]
        names = set(LOOPBACK_NAMES)
        names.update(name for name in configured if name != ANY_HOST)
        interface = listen_interface(listen)
        beyond_loopback = False
        if interface:
            names.add(normalise(interface))
        if interface is not None and not is_loopback(normalise(interface)):
            beyond_loopback = True
            names.update(machine_names() if names_of_machine is None else names_of_machine)
        wildcard = interface is not None and (interface == "" or _is_unspecified(normalise(interface)))
        return cls(
            frozenset(names),
            any_address=beyond_loopback and wildcard,
            any_host=ANY_HOST in configured,
        )

    def allows(self, name: str) -> bool:
        return self.any_host or name in self.names or (self.any_address and is_ip_literal(name))


def _is_unspecified(interface: str) -> bool:
    try:
        return ipaddress.ip_address(interface).is_unspecified
    except ValueError:
        return False

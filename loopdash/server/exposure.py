"""Whether a listening endpoint reaches beyond this machine, and what to say if so.

The bearer token crosses the network in every request: over plain TCP on a
non-loopback interface anyone on the path can read it. Pure functions over
the endpoint string (``--listen`` or the one built from ``--host``/``--port``).
"""

from __future__ import annotations

import ipaddress
import re

#: Endpoint types that carry plain (unencrypted) TCP.
PLAIN_TCP = frozenset({"tcp", "tcp6"})


def endpoint_fields(description: str) -> tuple[str, list[str], dict[str, str]]:
    """Split a Twisted endpoint string: type, positional args, keyword args (``\\:`` escapes a colon)."""
    parts = [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", description)]
    kind, rest = parts[0].strip().lower(), parts[1:]
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for part in rest:
        name, sep, value = part.partition("=")
        if sep:
            kwargs[name] = value
        else:
            args.append(part)
    return kind, args, kwargs


def is_loopback(interface: str) -> bool:
    """Whether ``interface`` names only this machine ("" and 0.0.0.0 mean every interface)."""
    if interface.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def exposure_warning(description: str) -> str | None:
    """A warning for an endpoint reachable from other machines without TLS, else None."""
    kind, _, kwargs = endpoint_fields(description)
    if kind not in PLAIN_TCP:
        return None  # TLS, or a UNIX socket, a systemd-passed socket: not clear text over a network
    interface = kwargs.get("interface", "")
    if is_loopback(interface):
        return None
    where = interface or "every interface"
    return (
        f"Listening on {where} without TLS: the API token crosses the network in clear text. "
        "Serve over TLS (--listen ssl:PORT:privateKey=key.pem:certKey=cert.pem:interface=...) "
        "or behind a TLS reverse proxy, or listen on 127.0.0.1 only."
    )

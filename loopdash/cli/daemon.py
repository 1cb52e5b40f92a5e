"""The twistd plugin's module: the server's ``tap`` with the client's follower of ``--remote`` daemons.

``twistd loopdash`` imports this (``twisted/plugins/loopdash_plugin.py``).
The server may not import the client (tests/test_layers.py), yet a
``--remote`` daemon is read through the client
(:class:`loopdash.client.remote.RemoteLink`): this module, above both, joins
them. Everything else is :mod:`loopdash.server.tap`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import IService, Service

from loopdash.server.tap import Options

__all__ = ["Options", "follow_remote", "makeService"]


def follow_remote(
    machine: str, url: str, token_path: str, publish: Callable[[str, Any, str], None], clock: Any
) -> Service:
    """The follower of one ``--remote`` daemon (the server's ``FollowRemote``): a
    :class:`loopdash.client.remote.RemoteLink`.

    The client is imported here, on the first ``--remote``, not with this
    module: it brings treq and Twisted's web client (about 0.15 s of every
    daemon's start-up, measured with bench/projects.py), which a daemon
    without ``--remote`` never uses.
    """
    from loopdash.client.remote import RemoteLink

    return RemoteLink(machine, url, token_path, publish, clock)


def makeService(options: Options) -> IService:
    """The dashboard service (:func:`loopdash.server.tap.makeService`), following its --remote daemons."""
    from loopdash.server.tap import makeService as make

    return make(options, follow_remote=follow_remote)

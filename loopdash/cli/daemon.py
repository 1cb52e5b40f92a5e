"""The twistd plugin's module: the server's ``tap`` with the client's follower of ``--remote`` daemons.

``twistd loopdash`` imports this (``twisted/plugins/loopdash_plugin.py``).
The server may not import the client (tests/test_layers.py), yet a
``--remote`` daemon is read through the client
(:class:`loopdash.client.remote.RemoteLink`): this module, above both, joins
them. Everything else is :mod:`loopdash.server.tap`'s.
"""

from __future__ import annotations

from twisted.application.service import IService

from loopdash.client.remote import RemoteLink
from loopdash.server.tap import Options

__all__ = ["Options", "makeService"]


def makeService(options: Options) -> IService:
    """The dashboard service (:func:`loopdash.server.tap.makeService`), following its --remote daemons."""
    from loopdash.server.tap import makeService as make

    return make(options, follow_remote=RemoteLink)

"""The client side: a typed treq client of the API, its values and events, and the terminal view.

:mod:`.dashboard` holds :class:`DashboardClient` (one async method per
endpoint and a resumable stream), :mod:`.models` and :mod:`.events` the
frozen values it returns, :mod:`.sse` the event-stream parser, and
:mod:`.watch` the ``loopdash watch`` terminal view. May import
:mod:`loopdash.local` (to find a daemon and its token), never the server or
the CLI. The names below are the public surface: ``from loopdash.client
import DashboardClient``.
"""

from __future__ import annotations

from loopdash.client.dashboard import (
    DEFAULT_URL,
    BadRequest,
    ConnectionFailed,
    DashboardClient,
    DashboardError,
    Disconnected,
    Forbidden,
    HTTPError,
    MalformedResponse,
    NotFound,
    ReconnectPolicy,
    ServerError,
    TimedOut,
    Unauthorized,
    asyncio_iterate,
    asyncio_run,
    find_url,
)

__all__ = [
    "DEFAULT_URL",
    "BadRequest",
    "ConnectionFailed",
    "DashboardClient",
    "DashboardError",
    "Disconnected",
    "Forbidden",
    "HTTPError",
    "MalformedResponse",
    "NotFound",
    "ReconnectPolicy",
    "ServerError",
    "TimedOut",
    "Unauthorized",
    "asyncio_iterate",
    "asyncio_run",
    "find_url",
]

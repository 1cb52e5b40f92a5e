"""Deprecated alias of :mod:`loopdash.client.events` (the client's stream events); import from there.

Kept so code written against the flat layout of 0.1 keeps working.
"""

from __future__ import annotations

import warnings

from loopdash.client.events import *  # noqa: F403

warnings.warn(
    "loopdash.client_events is deprecated; import from loopdash.client.events",
    DeprecationWarning,
    stacklevel=2,
)

"""Deprecated alias of :mod:`loopdash.client.models` (the client's values); import from there.

Kept so code written against the flat layout of 0.1 keeps working.
"""

from __future__ import annotations

import warnings

from loopdash.client.models import *  # noqa: F403

warnings.warn(
    "loopdash.client_models is deprecated; import from loopdash.client.models",
    DeprecationWarning,
    stacklevel=2,
)

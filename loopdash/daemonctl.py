"""Deprecated alias of :mod:`loopdash.local.daemon` (finding and stopping a project's daemon); import from there.

Kept so code written against the flat layout of 0.1 keeps working.
"""

from __future__ import annotations

import warnings

from loopdash.local.daemon import *  # noqa: F403

warnings.warn(
    "loopdash.daemonctl is deprecated; import from loopdash.local.daemon",
    DeprecationWarning,
    stacklevel=2,
)

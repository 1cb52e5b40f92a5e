"""JSON as the API writes it: compact UTF-8, and never NaN (which is not JSON)."""

from __future__ import annotations

import json

from msgspec import Struct

from loopdash.contract.codec import encode


def encode_json(value: object) -> bytes:
    """A contract value (a Struct) through msgspec; other builtins through json.

    The contract's values are finite by construction (the readers refuse NaN
    and infinities, tests/test_parsing.py); json's ``allow_nan=False`` guards
    the rest.
    """
    if isinstance(value, Struct):
        return encode(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

"""JSON as the API writes it: compact UTF-8, and never NaN (which is not JSON)."""

from __future__ import annotations

import json


def encode_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

"""Checking a request's credentials against the API token.

Pure functions over header values; the token itself comes from
:class:`loopdash.local.token.TokenFile`.
"""

from __future__ import annotations

import hmac

MISSING_HEADER = "Missing or invalid Authorization header"
INVALID_TOKEN = "Invalid authentication token"


class Denied(Exception):
    """A request's credentials were refused: 401 (absent/malformed) or 403 (wrong)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


def bearer_token(header_values: list[bytes] | None) -> str:
    """The token of a single ``Authorization: Bearer <token>`` header, or Denied(401).

    The scheme is case-insensitive (RFC 7235); two Authorization headers are
    refused, since proxies and servers may disagree about which one counts.
    """
    if not header_values or len(header_values) != 1:
        raise Denied(401, MISSING_HEADER)
    try:
        value = header_values[0].decode("ascii").strip()
    except UnicodeDecodeError:
        raise Denied(401, MISSING_HEADER) from None
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Denied(401, MISSING_HEADER)
    return token


def check_token(presented: str, expected: str | None) -> None:
    """Raise Denied(403) unless ``presented`` is the token, compared in constant time."""
    if expected is None or not hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8")):
        raise Denied(403, INVALID_TOKEN)

"""loopdash: watch an autonomous coding loop live over HTTP."""

__version__ = "0.1.0"

#: The version of the dashboard API contract (dashboard-api.md) that we serve.
API_VERSION = "1.0.0"

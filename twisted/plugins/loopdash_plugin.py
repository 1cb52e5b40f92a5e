from twisted.application.service import ServiceMaker

loopdash = ServiceMaker(
    "loopdash",
    "loopdash.cli.daemon",
    "Live dashboard for an autonomous coding loop: REST API and SSE stream",
    "loopdash",
)

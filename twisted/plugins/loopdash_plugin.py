from twisted.application.service import ServiceMaker

loopdash = ServiceMaker(
    "loopdash",
    "loopdash.server.tap",
    "Live dashboard for an autonomous coding loop: REST API and SSE stream",
    "loopdash",
)

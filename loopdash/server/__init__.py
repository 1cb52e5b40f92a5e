"""The daemon: the HTTP API, the event stream, the watcher, and their wiring.

The Klein app (:mod:`.api`) behind one front resource that owns CORS,
security headers, limits and errors (:mod:`.front`, :mod:`.limits`), bearer
authentication and its throttle (:mod:`.auth`, :mod:`.throttle`), the access
and daemon logs (:mod:`.accesslog`, :mod:`.logformat`), the SSE hub
(:mod:`.stream`), the shared snapshot of the project (:mod:`.live`), the
polling and inotify watcher (:mod:`.watcher`), the OpenAPI document
(:mod:`.openapi`), the web page (:mod:`.webui`), and the service wiring and
twistd plugin (:mod:`.service`, :mod:`.tap`). The reactor lives here. May
import :mod:`loopdash.loop`, :mod:`loopdash.derive`, :mod:`loopdash.local`
and :mod:`loopdash.metrics`; never the client or the CLI.
"""

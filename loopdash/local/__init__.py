"""The dashboard's own files on this machine, shared by the server, the client and the CLI.

The API token's file (:mod:`.token`), the daemon's pidfile and state file
under ``.claude-loop/dashboard/`` and how to find or stop a running daemon
(:mod:`.daemon`), and facts about processes read from ``/proc``
(:mod:`.procinfo`). Plain blocking code; imports :mod:`loopdash.loop` at most,
never Twisted, the server, the client or the CLI.
"""

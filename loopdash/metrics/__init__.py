"""Prometheus metrics: the daemon's own (:mod:`.meter`, :mod:`.prometheus`) and the loop's (:mod:`.loop`).

The server records requests, streams and polls through the :class:`.meter.Meter`
protocol and serves ``/metrics`` from :mod:`.prometheus`; :mod:`.loop` computes
the loop's figures at scrape time from a snapshot. May import
:mod:`loopdash.loop` and :mod:`loopdash.derive`, never the server, client or CLI.
"""

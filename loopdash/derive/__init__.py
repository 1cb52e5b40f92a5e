"""Deriving the API's answers from snapshots of a loop: pure functions.

:mod:`.status` applies the state rules (current run, is it running, current
story, progress, estimates) and builds the JSON shapes of the contract;
:mod:`.changes` compares two snapshots and says what changed, as the events
of the stream. Imports only :mod:`loopdash.loop`; no Twisted, no I/O.
"""

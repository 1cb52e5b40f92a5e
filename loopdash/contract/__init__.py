"""The API's contract: each answer's shape, defined once as typed classes.

:mod:`.shapes` holds the msgspec Structs of dashboard-api.md's data models (what
a client reads, each with ``extra`` for whatever else the server sent) and, beside
each, the subclass the server answers with (the contract plus the fields
loopdash adds, closed: nothing else may leave). :mod:`.codec` encodes them to
JSON, decodes and validates a server's JSON into them, and turns them into the
JSON Schemas of the OpenAPI document. Plain Python over msgspec: may import
nothing of loopdash but :mod:`loopdash` itself; ``derive``, ``server`` and
``client`` import it.
"""

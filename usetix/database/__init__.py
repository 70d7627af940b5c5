"""The database layer below the web: the request's connection and the prepared SELECTs
of the API's hot path. Models and the ``db`` extension live in ``usetix.models`` and
``usetix.extensions``."""

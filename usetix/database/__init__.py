"""Everything that talks SQL: ``engine.py`` (the ``db`` extension, the declarative base,
SQLite's connection setup), ``models.py`` (every table), and below the web the request's
connection, the prepared SELECTs, Idempotency-Key claims and the tombstones of deletions."""

"""Pure modules: no Flask, no database, no I/O (Flask's own ``sansio`` rule).

What lives here can be read and tested on its own: the token format, the
``Authorization`` header, the ``Accept`` rule, the API's list parameters and the audit
log's actions. Every layer above may import it; it imports nothing of Usetix.
"""

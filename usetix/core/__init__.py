"""Pure modules: no Flask, no database, no I/O (Flask's own ``sansio`` rule).

What lives here can be read and tested on its own: the token format, the
``Authorization`` header, the ``Accept`` rule and the API's list parameters. Every layer
above may import it; it imports nothing of Usetix.
"""

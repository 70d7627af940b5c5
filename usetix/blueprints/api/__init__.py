"""The JSON API blueprint: bearer-token authentication and the V1 read endpoints.

Requests reach it only when they ask for JSON (see ``usetix/web/app.py``).
``authentication.py`` holds its bearer hook, ``lists.py`` the paginated lists, and
``views.py`` the read endpoints, ``writes.py`` the writes and single-object reads (with
``writing.py``, what every write shares); views read ``g.principal``, never the login session.
"""

from __future__ import annotations

from flask import Blueprint

from ...extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/admin")
csrf.exempt(bp)  # bearer tokens, never cookies: there is nothing for a forged form to ride on

from . import authentication, views, writes  # noqa: E402,F401  (they add their hooks and views to bp)

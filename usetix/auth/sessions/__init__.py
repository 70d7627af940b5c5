"""Dashboard sessions: a signed cookie while anonymous, a server-side record once logged in.

An anonymous visitor's session (the login form's CSRF secret, a flash message) lives in a
signed, HttpOnly cookie, signed by Flask's own cookie-session signer: no visit writes to
the store. A logged-in admin's session lives on the server: the cookie then holds only a
random id, and the data is kept under the SHA-256 of that id, so a leaked table (or Redis
dump) holds nothing usable as a cookie. Why ours and not Flask-Session: see the README
("Why our own session store").

A stored session is created once, at login, under a fresh id, and afterwards only ever
updated in place (UPDATE, Redis SET XX): a request still in flight when its session was
logged out, expired or ended elsewhere cannot bring it back.

JSON API requests never open a session: they authenticate by bearer token only, and the
hot path must not touch the store.

The modules: ``data.py`` (the session's data), ``store.py`` (what a store does, and its
failure), ``database_store.py`` and ``redis_store.py`` (the two stores), ``interface.py``
(Flask's ``SessionInterface``: the cookie, when to write), ``hooks.py`` (what the login
and dashboard blueprints call).
"""

"""Who is this request: the machinery of authentication, apart from the screens.

- ``principal``: the one answer, ``g.principal`` (account, and the token or the admin).
- ``policy``: ``@public`` marks a view that needs no token; the hook and the gate read it.
- ``refusals`` and ``bearer``: how a bearer token is screened, looked up and refused.
- ``token_service``: issuing and revoking tokens with their audit records.
- ``passwords`` and ``admins``: admin passwords and Flask-Login's loader and settings.
- ``sessions``: the dashboard's server-side sessions (data, stores, Flask interface, hooks).

Nothing here imports the web layer or a blueprint (import-linter checks it).
"""

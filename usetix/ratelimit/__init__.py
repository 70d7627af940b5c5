"""Every rate limit of Usetix, counted through the ``limits`` library's public API.

Five kinds of limit, each a fixed window (``FixedWindowRateLimiter``'s algorithm, below):

- failed logins: per email and client address together (``LOGIN_RATE_LIMIT``), per client
  address across emails (``LOGIN_ADDRESS_RATE_LIMIT``: spraying), and per email from every
  address at a much looser bound (``LOGIN_EMAIL_RATE_LIMIT``), so that failures from one
  address never refuse the right password from another;
- API requests, per token (``API_RATE_LIMIT``);
- failed API authentications, per client address (``API_FAILED_AUTH_LIMIT``);
- leak reports (``POST /admin/credentials/revoke``), per client address (``LEAK_REPORT_RATE_LIMIT``);
- pairing devices: codes asked for, per client address (``DEVICE_AUTHORIZATION_RATE_LIMIT``),
  and user codes entered on the approval page, per login session (``DEVICE_CODE_RATE_LIMIT``)
  and per client address (``DEVICE_CODE_ADDRESS_RATE_LIMIT``), all shared like the login throttle.

Where they are counted. ``RATELIMIT_STORAGE_URL`` (``USETIX_RATELIMIT_STORAGE_URL``; see
``storage_from_string``) names the storage. A Redis URL counts every limit there, shared
by every worker and host. The default, ``worker-memory://``, counts in each worker's
memory: right for the two API limits, which exist to shed load (a client gets at most
workers times hosts times the limit), and wrong for the login throttle, which must hold
exactly. So when the configured storage is per worker, the login throttle (and any other
limit counted with :meth:`RateLimits.hit_shared`) is counted in the app's database
instead (``usetix-database://``, ``database_storage.py``).

When the storage fails (Redis down). The API's limits fail open: the request is served
uncounted, without ``RateLimit-*`` headers, and the outage is logged as an error at most
once per ``OUTAGE_LOG_SECONDS`` per worker. The login throttle fails closed: the login
form answers 503 (:class:`LimitsUnavailable`) until the storage is back. After a failure
a storage is left alone for ``OUTAGE_RETRY_SECONDS``, so a storage that hangs costs a
request its timeout at most that often.

``RATELIMIT_ENABLED = False`` (for a deployment behind a rate-limiting gateway) switches
every limit off: nothing is counted, no ``RateLimit-*`` header is sent, no request is
refused with 429. The app is bound once, in ``create_app``, through :func:`init_app`.

The modules: ``limits.py`` (the limits, their storages, fail open or closed),
``counting.py`` (one request counted in a fixed window), ``keys.py``, ``storage_uri.py``
(the storage a URL names), ``worker_memory.py`` and ``database_storage.py`` (our two
storages).
"""

from .keys import address_key, email_key
from .limits import LimitsUnavailable, LoginAttempt, RateLimits, init_app, rate_limits

__all__ = ["LimitsUnavailable", "LoginAttempt", "RateLimits", "address_key", "email_key", "init_app", "rate_limits"]

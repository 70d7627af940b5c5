"""gunicorn settings for Usetix: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gunicorn also reads this file by itself when started from the repository root. Options
given on the command line win over these. Environment variables:

- ``USETIX_BIND``: address to listen on (default 127.0.0.1:8000; behind a proxy on
  another machine, e.g. 0.0.0.0:8000).
- ``USETIX_WORKERS``: worker processes (default 2 per usable core, plus one).
- ``USETIX_ACCESS_LOG``: gunicorn's access log, off by default: a file, or ``-`` for stdout.
  The app's own request log (stderr) already writes one line per request, with the
  account and token it served; the access log would say the same again.
- ``FORWARDED_ALLOW_IPS``: gunicorn's own, the proxy addresses trusted for
  X-Forwarded-Proto (the app's ProxyFix is configured separately: USETIX_PROXY_FIX).
"""

import os


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


wsgi_app = "wsgi:app"
bind = [address.strip() for address in os.environ.get("USETIX_BIND", "127.0.0.1:8000").split(",") if address.strip()]
# Sync workers: each request does a little CPU work and short database queries.
workers = int(os.environ.get("USETIX_WORKERS") or 2 * _usable_cores() + 1)
# A request taking longer than this is stuck: the worker is killed and replaced.
timeout = 30
# On SIGTERM or a restart, requests in flight get this long to finish.
graceful_timeout = 20
# Keep-alive only matters behind a proxy that reuses connections to the app.
keepalive = 5
# No runtime-control socket: nothing should reconfigure a production server through a file.
control_socket_disable = True
# preload_app stays off: each worker builds the app, and opens its database connections,
# after the fork (connections shared across a fork corrupt each other).

# Oversized requests are refused here, before the app reads them: a request line over
# 4094 bytes gets 414, more than 100 header fields or one over 8190 bytes gets 431 (a
# bearer token is 40 characters). gunicorn's defaults, stated so nobody loosens them by
# accident; the app refuses bodies over MAX_CONTENT_LENGTH (1 MiB) with 413.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# When turned on, the access log names the path without its query string and no request headers: the
# Authorization header (the bearer token) and a token pasted into a URL never reach it.
# Avoided on purpose: %(r)s and %(q)s (query string), %(f)s (a referrer holds one),
# %(u)s (Basic auth user), %({authorization}i)s.
accesslog = os.environ.get("USETIX_ACCESS_LOG") or None
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = "info"

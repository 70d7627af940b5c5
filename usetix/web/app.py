"""The app class: one path, two audiences, and which endpoints need no token.

JSON requests reach the blueprints that answer JSON, all others those that answer HTML:
each blueprint declares which (``usetix/web/audience.py``).

Both blueprints register the same rules under /admin (the public document's example is
``GET /admin/events``). Werkzeug routes on path and method only, so one map holding both
would always pick the same rule. Instead the app keeps two filtered copies of its URL map
and ``create_url_adapter`` (Flask's extension point for "which rules does this request
see") binds each request to one of them, by its Accept header. Views and hooks never have
to ask which kind of request they are serving.

The app also answers, once for all, which endpoints are public (``@public`` views, see
``usetix.auth.policy``) and at which paths: the bearer hook and the credential gate ask it.
"""

from __future__ import annotations

from flask import Flask, Request
from werkzeug.routing import Map, MapAdapter, Rule
from werkzeug.utils import cached_property

from ..auth.policy import is_public, public
from ..core.negotiation import prefers_json
from .audience import Audience
from .responses import UsetixResponse
from .row_id import RowIdConverter


class UsetixRequest(Request):
    @cached_property
    def wants_json(self) -> bool:
        """Whether this is a JSON (API) request; see :mod:`usetix.core.negotiation`."""
        return prefers_json(self.environ.get("HTTP_ACCEPT"))  # as the credential gate reads it


class Usetix(Flask):
    request_class = UsetixRequest
    response_class = UsetixResponse

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.url_map.converters["row_id"] = RowIdConverter
        self._sync_callables: dict = {}
        if "static" in self.view_functions:
            public(self.view_functions["static"])  # our static files need no token

    def ensure_sync(self, func):
        # Flask asks inspect.iscoroutinefunction() about every hook, view and error handler on
        # every request, and the answer never changes (docs/performance.md).
        try:
            return self._sync_callables[func]
        except KeyError:
            sync = self._sync_callables[func] = super().ensure_sync(func)
            return sync
        except TypeError:  # unhashable
            return super().ensure_sync(func)

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        adapter = super().create_url_adapter(request)
        if adapter is not None and request is not None:
            adapter.map = self.json_url_map if request.wants_json else self.html_url_map
        return adapter

    # Built on first use: Flask refuses new routes once the app has served a request.
    @cached_property
    def public_endpoints(self) -> frozenset[str]:
        """Endpoints whose view is marked ``@public``."""
        return frozenset(endpoint for endpoint, view in self.view_functions.items() if is_public(view))

    @cached_property
    def public_json_paths(self) -> tuple[frozenset[str], tuple[str, ...]]:
        """Paths a public endpoint may answer on a JSON request: exact ones, and prefixes
        for rules with variables (``/static/<path:filename>``)."""
        exact, prefixes = set(), []
        for rule in self.json_url_map.iter_rules():
            if rule.endpoint in self.public_endpoints:
                if rule.arguments:
                    prefixes.append(rule.rule.partition("<")[0])
                else:
                    exact.add(rule.rule)
        return frozenset(exact), tuple(prefixes)

    @cached_property
    def json_url_map(self) -> Map:
        return self._url_map_of(lambda audience: audience is not Audience.HTML)

    @cached_property
    def html_url_map(self) -> Map:
        return self._url_map_of(lambda audience: audience is not Audience.JSON)

    def audience_of(self, endpoint: str) -> Audience:
        """Which requests an endpoint answers, as its blueprint declares (``usetix/web/audience.py``);
        the app's own routes (the static files) answer both kinds."""
        blueprint = endpoint.rpartition(".")[0]
        if not blueprint:
            return Audience.BOTH
        return getattr(self.blueprints[blueprint], "audience", Audience.HTML)

    def _url_map_of(self, keep) -> Map:
        full = self.url_map
        url_map = self.url_map_class(
            [_copy(rule) for rule in full.iter_rules() if keep(self.audience_of(rule.endpoint))],
            default_subdomain=full.default_subdomain,
            strict_slashes=full.strict_slashes,
            merge_slashes=full.merge_slashes,
            redirect_defaults=full.redirect_defaults,
            converters=full.converters,
            sort_parameters=full.sort_parameters,
            sort_key=full.sort_key,
            host_matching=full.host_matching,
        )
        return url_map


def _copy(rule: Rule) -> Rule:
    """An unbound copy of ``rule`` for another map, with Flask's flag kept as well.

    ``Rule.empty()`` knows only Werkzeug's arguments; without ``provide_automatic_options``
    an OPTIONS request would run the view itself, and a POST-only view such as revoking a
    token would act on it, unchecked by CSRF (which guards POST, PUT, PATCH and DELETE).
    """
    copy = rule.empty()
    copy.provide_automatic_options = getattr(rule, "provide_automatic_options", False)
    return copy

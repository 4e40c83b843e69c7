"""Rendering: the Jinja2 environment, the page helper, the security headers, and the route class that turns
every failure of a portal route into a page (a redirect to the login page, a 403 for a bad form, the
friendly error page) instead of the API's JSON body.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from beamlink.errors import AuthenticationFailed, BeamlinkError, NotFound
from beamlink.service.api.errors import validation_error
from beamlink.service.logs import request_id_var
from beamlink.service.portal import filters
from beamlink.service.portal.session import (
    SESSION_COOKIE,
    CsrfRejected,
    LoginRequired,
    Visitor,
    clear_cookie,
    csrf_token,
    here,
    login_url,
)
from beamlink.service.state import ServiceState

__all__ = ["CSP", "PortalRoute", "render", "templates"]

log = logging.getLogger(__name__)

# No inline script or style anywhere: scripts and styles come from /portal/static only, so injected markup
# (a record's content, say) cannot run even if escaping were ever missed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Pages show what one person may see: never kept by a shared cache, nor shown again after sign-out.
    "Cache-Control": "no-store",
}


@functools.lru_cache(maxsize=1)
def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("beamlink.service.portal", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters.FILTERS)
    env.globals.update(status_class=filters.status_class, duration=filters.duration)
    return env


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.beamlink
    return state


def current_visitor(request: Request) -> Visitor:
    found = getattr(request.state, "visitor", None)
    return found if isinstance(found, Visitor) else Visitor(None)


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page. Every template gets the visitor, its CSRF token and the current path besides ``context``."""
    visitor = current_visitor(request)
    html = (
        templates()
        .get_template(template)
        .render(
            visitor=visitor,
            csrf=csrf_token(_state(request), visitor.binding),
            here=here(request),
            section=context.pop("section", ""),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code)


def error_page(request: Request, status_code: int, title: str, message: str, **extra: Any) -> HTMLResponse:
    return render(
        request,
        "error.html",
        status_code=status_code,
        title=title,
        message=message,
        status=status_code,
        request_id=request_id_var.get(),
        **extra,
    )


_TITLES = {
    400: "That request did not make sense",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    409: "That cannot be done right now",
    422: "Something in the request is not right",
    503: "Temporarily unavailable",
}


def _page_for(request: Request, exc: Exception) -> Response:
    if isinstance(exc, LoginRequired):
        response: Response = RedirectResponse(login_url(exc.next_url, expired=exc.expired), status_code=303)
        if exc.expired:
            clear_cookie(response, _state(request), SESSION_COOKIE)
        return response
    if isinstance(exc, CsrfRejected):
        return error_page(
            request,
            403,
            "This form has expired",
            "The form was sent without its security token, or with one from another session, so it was "
            "refused. Go back, reload the page and send it again.",
        )
    if isinstance(exc, RequestValidationError):
        exc = validation_error(exc)
    if isinstance(exc, AuthenticationFailed):
        return _page_for(request, LoginRequired(here(request), expired=True))
    if isinstance(exc, BeamlinkError):
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        hidden = isinstance(exc, NotFound) and not current_visitor(request).signed_in
        title = (
            "Not found, or not visible to you" if hidden else _TITLES.get(exc.status, "Something went wrong")
        )
        return error_page(
            request,
            exc.status,
            title,
            exc.message,
            code=exc.code,
            suggest_login=hidden,
        )
    log.exception("unhandled error in a portal page", exc_info=exc)
    return error_page(
        request,
        500,
        "Something went wrong on our side",
        f"The service log has the details under request id {request_id_var.get()}.",
    )


class PortalRoute(APIRoute):
    """An API route whose failures render as pages, and whose answers carry the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                response = _page_for(request, exc)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route

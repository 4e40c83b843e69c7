"""Browser sessions and CSRF.

A session is an ordinary API token (issued by the login form, revoked by sign-out) kept in an HttpOnly,
SameSite=Lax cookie; every portal request resolves it with the same authentication, and the same
principal cache, as a bearer token (:func:`beamlink.service.api.deps.principal_of_token`).

Every POST form carries ``csrf_token`` = HMAC(key, what the form is bound to): the session token when
signed in, else a random pre-login cookie (so the login form cannot be posted from another site either).
A cross-site page can make the browser send the cookie but cannot read it, so it cannot compute the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from starlette.responses import Response

from beamlink.errors import AuthenticationFailed
from beamlink.service.api.deps import State, principal_of_token
from beamlink.service.auth.principal import Principal
from beamlink.service.portal.secret import derived_key
from beamlink.service.state import ServiceState

__all__ = [
    "CSRF_FIELD",
    "PRELOGIN_COOKIE",
    "SESSION_COOKIE",
    "CsrfRejected",
    "LoginRequired",
    "Member",
    "OptionalVisitor",
    "SignedIn",
    "Visitor",
    "check_csrf",
    "csrf_token",
    "here",
    "login_url",
    "safe_next",
    "set_cookie",
]

SESSION_COOKIE = "beamlink_session"
PRELOGIN_COOKIE = "beamlink_prelogin"
CSRF_FIELD = "csrf_token"
COOKIE_PATH = "/portal"


class LoginRequired(Exception):
    """The page needs a signed-in visitor: the portal answers with a redirect to the login page."""

    def __init__(self, next_url: str, *, expired: bool) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired


class CsrfRejected(Exception):
    """A form arrived without a valid CSRF token."""


@dataclass(frozen=True)
class Visitor:
    """Who is looking at a page: a principal, or nobody (``expired`` when a session cookie went stale)."""

    principal: Principal | None
    session_token: str | None = None
    prelogin: str | None = None
    expired: bool = False

    @property
    def signed_in(self) -> bool:
        return self.principal is not None

    @property
    def binding(self) -> str | None:
        """What this visitor's forms are bound to."""
        return self.session_token or self.prelogin


@dataclass(frozen=True)
class Member:
    """A signed-in visitor: what the pages behind the login get."""

    principal: Principal
    session_token: str


def _csrf_key(state: ServiceState) -> bytes:
    return derived_key(state.settings.server_dir, "csrf")


def csrf_token(state: ServiceState, binding: str | None) -> str:
    if not binding:
        return ""
    return hmac.new(_csrf_key(state), binding.encode(), hashlib.sha256).hexdigest()


def check_csrf(state: ServiceState, binding: str | None, submitted: str | None) -> None:
    expected = csrf_token(state, binding)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfRejected("the form's security token is missing or does not match this session")


def safe_next(raw: str | None) -> str:
    """Only a path inside the portal: never another site (``//evil``, ``https://...``) after login."""
    if not raw or not raw.startswith("/portal") or raw.startswith("//") or "\\" in raw:
        return "/portal/"
    return raw


def login_url(next_url: str | None = None, *, expired: bool = False) -> str:
    query: dict[str, str] = {}
    if next_url and safe_next(next_url) == next_url and next_url != "/portal/":
        query["next"] = next_url
    if expired:
        query["reason"] = "expired"
    return "/portal/login" + (f"?{urlencode(query)}" if query else "")


def here(request: Request) -> str:
    """The page's own URL as the browser sent it (still encoded: a record's subject keeps its %2F)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    query = request.url.query
    return path + (f"?{query}" if query else "")


def secure_cookies(state: ServiceState) -> bool:
    return state.settings.effective_public_url.startswith("https://")


def set_cookie(response: Response, state: ServiceState, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(state),
    )


def clear_cookie(response: Response, state: ServiceState, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure_cookies(state)
    )


def new_prelogin() -> str:
    return secrets.token_urlsafe(24)


async def visitor(request: Request, state: State) -> Visitor:
    prelogin = request.cookies.get(PRELOGIN_COOKIE)
    raw = request.cookies.get(SESSION_COOKIE)
    found = Visitor(None, prelogin=prelogin)
    if raw:
        try:
            found = Visitor(await principal_of_token(state, raw), session_token=raw)
        except AuthenticationFailed:
            found = Visitor(None, prelogin=prelogin, expired=True)
    request.state.visitor = found  # the error pages draw the navigation from it
    return found


async def signed_in(request: Request, found: Annotated[Visitor, Depends(visitor)]) -> Member:
    if found.principal is None or found.session_token is None:
        raise LoginRequired(here(request), expired=found.expired)
    return Member(found.principal, found.session_token)


OptionalVisitor = Annotated[Visitor, Depends(visitor)]
SignedIn = Annotated[Member, Depends(signed_in)]

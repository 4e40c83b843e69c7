"""The HTTP core of the SDK: where the service is, which token to send, and errors as beamlink classes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from beamlink.config import DEFAULT_PORT, default_home
from beamlink.credentials import read_credentials
from beamlink.errors import AuthenticationFailed, ServiceUnreachable, error_from_payload

__all__ = ["BaseClient", "quote_segment", "resolve_url"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def quote_segment(value: str) -> str:
    """One path segment, percent-encoded (names may hold slashes, quotes, spaces, unicode)."""
    return quote(value, safe="")


def resolve_url(url: str | None, home: Path) -> str:
    """Argument, then ``BEAMLINK_URL``, then the credentials file, then the local default."""
    if url:
        return url.rstrip("/")
    env = os.environ.get("BEAMLINK_URL")
    if env:
        return env.rstrip("/")
    stored = read_credentials(home / "credentials.json")
    if stored is not None:
        return stored.url.rstrip("/")
    return f"http://127.0.0.1:{DEFAULT_PORT}"


class BaseClient:
    """Finds the service and a token, sends requests, raises the service's own error classes.

    Token, first found wins: ``token=``; ``BEAMLINK_TOKEN``; client credentials (``client_id=`` and
    ``client_secret=``, or ``BEAMLINK_CLIENT_ID``/``BEAMLINK_CLIENT_SECRET``), exchanged for a token on
    first use; the credentials file ``$BEAMLINK_HOME/credentials.json`` written by ``beamlink login``.
    ``anonymous=True`` sends no token at all (public search results, health).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        home: str | Path | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        anonymous: bool = False,
    ) -> None:
        self.home = Path(home).expanduser() if home else default_home()
        self.url = resolve_url(url, self.home)
        self._client_id = client_id or os.environ.get("BEAMLINK_CLIENT_ID")
        self._client_secret = client_secret or os.environ.get("BEAMLINK_CLIENT_SECRET")
        if client_id and not client_secret:
            raise AuthenticationFailed("client_id was given without client_secret: pass both")
        self._token = None if anonymous else token or os.environ.get("BEAMLINK_TOKEN")
        if anonymous:
            self._client_id = self._client_secret = None
        elif not self._token and not (self._client_id and self._client_secret):
            stored = read_credentials(self.home / "credentials.json")
            if stored is not None and stored.url.rstrip("/") == self.url:
                self._token = stored.token
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        if self._token is None and self._client_id and self._client_secret:
            issued = self._post_token(
                {
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                }
            )
            self._token = str(issued["access_token"])
        return self._token

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` for the current token (empty when anonymous)."""
        token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def websocket_url(self, path: str) -> str:
        """The ``ws://`` (``wss://`` behind https) address of ``path`` on the service."""
        scheme, rest = self.url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"

    def _post_token(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/v1/auth/token", json=body, auth=False)
        return data

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        """Send one request; the decoded JSON body on success, a BeamlinkError subclass otherwise."""
        headers = self.auth_headers() if auth else {}
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=clean, headers=headers)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(
                f"cannot reach the beamlink service at {self.url} ({exc.__class__.__name__}): start it with "
                f"`beamlink server`, or point BEAMLINK_URL at it",
                details={"url": self.url},
            ) from exc
        if response.status_code >= 400:
            try:
                payload: Any = response.json()
            except ValueError:
                payload = response.text
            raise error_from_payload(response.status_code, payload)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Iterator[httpx.Response]:
        """A streamed response (bytes or server-sent events) on its own connection; errors raised as ours."""
        sent = {**(headers or {}), **self.auth_headers()}
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            with (
                httpx.Client(base_url=self.url, timeout=timeout or httpx.Timeout(10.0, read=60.0)) as http,
                http.stream(method, path, params=clean, headers=sent) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    try:
                        payload: Any = response.json()
                    except ValueError:
                        payload = response.text
                    raise error_from_payload(response.status_code, payload)
                yield response
        except httpx.TransportError as exc:
            raise ServiceUnreachable(
                f"the stream from {self.url} broke ({exc.__class__.__name__})", details={"url": self.url}
            ) from exc

    def _get_model(self, model: type[M], path: str, **params: Any) -> M:
        return model.model_validate(self.request("GET", path, params=params))

    def _walk(self, model: type[M], path: str, *, page_size: int | None = None, **params: Any) -> Iterator[M]:
        """Every item of a cursor-paged list, fetching pages as the caller iterates."""
        cursor: str | None = None
        while True:
            page = self.request("GET", path, params={**params, "limit": page_size, "cursor": cursor})
            for item in page["items"]:
                yield model.model_validate(item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _parse(self, kind: Any, data: Any) -> Any:
        return TypeAdapter(kind).validate_python(data)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

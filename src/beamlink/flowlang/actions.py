"""Which provider runs an ``ActionUrl``: a pure, table-driven registry.

* ``beamlink:<name>`` names one of our built-in providers directly (``beamlink:transfer``).
* The Globus-hosted action provider URLs (current and legacy) map to the built-in that does the same
  job, so a Globus flow runs unchanged; ``dialect`` tells the provider which body format to expect
  (``globus-legacy`` Transfer uses ``transfer_items``/``source_endpoint_id``, ``globus`` uses ``DATA``/
  ``source_endpoint``; Compute ``globus`` is the v2 ``tasks`` body, ``globus-v3`` the v3 one).
* Other Globus-hosted URLs (``stat``, ``manage_permission``, web options, DataCite, ...) have no
  built-in: they resolve as ``unsupported`` (a validation warning) and are called as external providers.
* Any other ``https://`` URL is an external Action Provider API.
* Anything else is ``unknown``, which validation reports as an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BUILTIN_PROVIDERS",
    "BUILTIN_SCHEME",
    "DEFAULT_REGISTRY",
    "GLOBUS_ACTION_URLS",
    "GLOBUS_UNSUPPORTED_URLS",
    "ActionRegistry",
    "ActionTarget",
]

BUILTIN_SCHEME = "beamlink"

#: Our built-in action providers, by name.
BUILTIN_PROVIDERS: frozenset[str] = frozenset(
    {
        "transfer",
        "delete",
        "ls",
        "mkdir",
        "compute",
        "search_ingest",
        "search_delete",
        "notify",
        "expression_eval",
        "hello_world",
        "wait_for_files",
    }
)

_LEGACY_TRANSFER_HOSTS = (
    "https://actions.globus.org/transfer",
    "https://actions.automate.globus.org/transfer",
)

#: Globus action provider URL → (built-in provider, dialect).
GLOBUS_ACTION_URLS: dict[str, tuple[str, str]] = {
    "https://actions.globus.org/hello_world": ("hello_world", "globus"),
    **{
        f"https://transfer.actions.globus.org/{op}": (op, "globus")
        for op in ("transfer", "delete", "ls", "mkdir")
    },
    **{
        f"{host}/{op}": (op, "globus-legacy")
        for host in _LEGACY_TRANSFER_HOSTS
        for op in ("transfer", "delete", "ls", "mkdir")
    },
    "https://actions.globus.org/search/ingest": ("search_ingest", "globus"),
    "https://actions.globus.org/search/delete": ("search_delete", "globus"),
    "https://actions.globus.org/notification/notify": ("notify", "globus"),
    "https://actions.globus.org/expression_eval": ("expression_eval", "globus"),
    "https://compute.actions.globus.org": ("compute", "globus"),
    "https://compute.actions.globus.org/v3": ("compute", "globus-v3"),
    "https://automate.funcx.org": ("compute", "globus-legacy"),
    "https://api.funcx.org/automate": ("compute", "globus-legacy"),
}

#: Globus-hosted providers with no built-in counterpart (called as external providers if used).
GLOBUS_UNSUPPORTED_URLS: frozenset[str] = frozenset(
    {
        *(
            f"https://transfer.actions.globus.org/{op}"
            for op in ("stat", "collection_info", "manage_permission")
        ),
        *(f"{host}/{op}" for host in _LEGACY_TRANSFER_HOSTS for op in ("set_permission", "collection_info")),
        "https://actions.globus.org/weboption/wait_for_option",
        "https://actions.globus.org/datacite/mint/basic_auth",
    }
)

_GLOBUS_HOST_SUFFIXES = ("globus.org", "funcx.org")

ActionKind = Literal["builtin", "external", "unsupported", "unknown"]


class ActionTarget(BaseModel):
    """What an ``ActionUrl`` resolves to."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(description="the ActionUrl as written")
    kind: ActionKind = Field(
        description="builtin, external (any https AP), unsupported (Globus-only), unknown"
    )
    provider: str | None = Field(None, description="built-in provider name when kind is 'builtin'")
    dialect: str = Field("beamlink", description="body format: beamlink, globus, globus-legacy, globus-v3")


def _normalise(url: str) -> str:
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


class ActionRegistry:
    """Resolves action URLs to providers. Immutable; build a new one to add mappings.

    ``extra`` maps more URLs to built-in names (the service adds its own ``/actions/<name>`` URLs, so a
    flow may name our providers by their public address); ``allow_http`` admits plain ``http://``
    external providers (development only).
    """

    def __init__(self, extra: Mapping[str, str] | None = None, *, allow_http: bool = False) -> None:
        table = dict(GLOBUS_ACTION_URLS)
        for url, provider in (extra or {}).items():
            if provider not in BUILTIN_PROVIDERS:
                raise ValueError(
                    f"{provider!r} is not a built-in provider ({', '.join(sorted(BUILTIN_PROVIDERS))})"
                )
            table[_normalise(url)] = (provider, "beamlink")
        self._table: Mapping[str, tuple[str, str]] = table
        self._allow_http = allow_http

    def resolve(self, url: str) -> ActionTarget:
        """Resolve ``url``; never raises (an unusable URL has ``kind == "unknown"``)."""
        text = url.strip()
        if text.lower().startswith(BUILTIN_SCHEME + ":"):
            name = text[len(BUILTIN_SCHEME) + 1 :].strip("/")
            if name in BUILTIN_PROVIDERS:
                return ActionTarget(url=url, kind="builtin", provider=name)
            return ActionTarget(url=url, kind="unknown")
        normal = _normalise(text)
        if normal in self._table:
            provider, dialect = self._table[normal]
            return ActionTarget(url=url, kind="builtin", provider=provider, dialect=dialect)
        parts = urlsplit(text)
        schemes = ("https", "http") if self._allow_http else ("https",)
        if parts.scheme.lower() not in schemes or not parts.hostname:
            return ActionTarget(url=url, kind="unknown")
        host = parts.hostname.lower()
        globus_host = any(host == suffix or host.endswith("." + suffix) for suffix in _GLOBUS_HOST_SUFFIXES)
        if normal in GLOBUS_UNSUPPORTED_URLS or globus_host:
            return ActionTarget(url=url, kind="unsupported", dialect="globus")
        return ActionTarget(url=url, kind="external", dialect="external")


#: The registry with only the built-in table (no service URLs, no plain http).
DEFAULT_REGISTRY = ActionRegistry()

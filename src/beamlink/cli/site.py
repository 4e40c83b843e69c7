"""A site file: the service and the agents of one deployment, for ``beamlink up`` and ``beamlink down``.

::

    service: {home: ./site-home, port: 8420}   # or url: http://host:port to use a running service
    collections:
      local:  {root: ./data/local}             # any key of a collection's config.yaml, root for root_path
    endpoints:
      non_compute: {engine: {type: thread, max_workers: 2}}   # any key of an endpoint's config.yaml
      compute: {engine: {type: parsl, max_workers_per_node: 1}}

Relative paths are resolved against the site file's directory (the built-in demo site's: its home).
``service.home`` is the ``BEAMLINK_HOME`` of the service and of every agent: their profiles, the
service's database and the admin's ``credentials.json`` live there. Errors name the key, the line and
the fix, through :mod:`beamlink.agents.yaml_config` with the endpoint and collection configs' wording.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from beamlink.agents.collection.config import EXPLAINER as COLLECTION_EXPLAINER
from beamlink.agents.collection.config import CollectionConfig
from beamlink.agents.daemon import AgentKind, validate_name
from beamlink.agents.endpoint.config import EXPLAINER as ENDPOINT_EXPLAINER
from beamlink.agents.endpoint.config import EndpointConfig
from beamlink.agents.yaml_config import Explainer, Section, load_model, parse_model, unknown_key
from beamlink.config import DEFAULT_PORT, default_home
from beamlink.errors import ConfigError

__all__ = [
    "DEMO_SITE",
    "STATE_FILE",
    "LoadedSite",
    "ServiceRecord",
    "ServiceSection",
    "Site",
    "SiteCollection",
    "SiteState",
    "demo_site",
    "load_site",
    "parse_site",
]

STATE_FILE = "site-state.json"
"""What ``up`` started, under the site home, so ``down`` knows what to stop."""

DEMO_SITE = """\
# The built-in demo site: `beamlink up` without -f. Paths are relative to its home.
service: {home: ., port: 8420}
collections:
  local:  {root: data/local, display_name: "Demo: local (beamline)"}
  remote: {root: data/remote, display_name: "Demo: remote (HPC storage)"}
  portal: {root: data/portal, display_name: "Demo: portal (published results)"}
endpoints:
  non_compute:                  # cheap steps: threads in the endpoint process
    display_name: "Demo: non-compute"
    engine: {type: thread, max_workers: 2}
  compute:                      # heavy steps: a Parsl HighThroughputExecutor on this host
    display_name: "Demo: compute (Parsl)"
    engine:
      type: parsl
      max_workers_per_node: 1
      provider: {type: LocalProvider, init_blocks: 1, min_blocks: 0, max_blocks: 1}
"""


class ServiceSection(Section):
    """Which service the agents connect to: one ``up`` starts (home, host, port) or a running one (url)."""

    home: Path | None = Field(
        default=None,
        description="BEAMLINK_HOME of the service and the agents (default: site-home next to the site file; "
        "with url, $BEAMLINK_HOME, where `beamlink login` keeps the token).",
    )
    host: str = Field(default="127.0.0.1", description="Interface the service listens on.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="Port the service listens on.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL (default: SQLite in home).")
    url: str | None = Field(default=None, description="Use the service running here instead of starting one.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http:// or https:// URL such as http://127.0.0.1:8420, got {value!r}"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_service(self) -> ServiceSection:
        starts = sorted({"host", "port", "database_url"} & self.model_fields_set)
        if self.url is not None and starts:
            raise PydanticCustomError("url_and_start", "url and {given}", {"key": "url", "given": starts})
        return self


class SiteCollection(CollectionConfig):
    """A collection of the site: the keys of its config.yaml, with ``root`` for ``root_path``."""

    root: Path = Field(description="The directory served, created if missing; relative to the site file.")
    root_path: Path | None = Field(default=None, exclude=True)  # type: ignore[assignment]

    @classmethod
    def _check_mapping(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        known = sorted(name for name in cls.model_fields if name != "root_path")
        for key in data:
            if key not in known:
                raise unknown_key(str(key), known)
        return data

    @field_validator("root_path", mode="before")
    @classmethod
    def _root_path(cls, value: Any) -> Any:
        return value  # the root may not exist yet: `up` creates it

    @field_validator("root", mode="before")
    @classmethod
    def _root(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("give the directory to serve, e.g. root: ./data/local")
        return value


def _names(kind: AgentKind, value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for name in value:
        try:
            validate_name(str(name))
        except Exception as exc:
            problem = str(exc).split(": ", 1)[-1]
            raise PydanticCustomError(
                "bad_name", "bad name", {"key": str(name), "kind": kind, "problem": problem}
            ) from None
    return value


class Site(Section):
    """The whole site file; every section is optional (an empty file is a bare service)."""

    service: ServiceSection = Field(default_factory=ServiceSection)
    collections: dict[str, SiteCollection] = Field(
        default_factory=dict, description="Collection agents by name (their profile names)."
    )
    endpoints: dict[str, EndpointConfig] = Field(
        default_factory=dict, description="Compute endpoints by name (their profile names)."
    )

    @field_validator("collections", mode="before")
    @classmethod
    def _collection_names(cls, value: Any) -> Any:
        return _names("collection", value)

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoint_names(cls, value: Any) -> Any:
        value = _names("endpoint", value)
        # `name:` with nothing after it is an endpoint with every default.
        return {k: ({} if v is None else v) for k, v in value.items()} if isinstance(value, dict) else value


class _SiteExplainer(Explainer):
    """The site's own wording, plus the endpoint's and the collection's for the sections they validate."""

    what: ClassVar[str] = "site file"
    keys_hint: ClassVar[str] = "service:, collections:, endpoints:"
    key_kinds: ClassVar[frozenset[str]] = ENDPOINT_EXPLAINER.key_kinds | {"bad_name"}
    parent_kinds: ClassVar[frozenset[str]] = ENDPOINT_EXPLAINER.parent_kinds

    def message(self, kind: str, ctx: dict[str, Any], key: str, at: str, parent: str) -> str | None:
        return ENDPOINT_EXPLAINER.message(kind, ctx, key, at, parent)

    def problem(self, kind: str, ctx: dict[str, Any], value: Any, key: str) -> str | None:
        if kind == "bad_name":
            return (
                f"{key!r} cannot name {'an' if ctx['kind'] == 'endpoint' else 'a'} {ctx['kind']}: "
                f"{ctx['problem']} (it becomes the directory "
                f"{ctx['kind']}s/{key} in the site home)"
            )
        if kind == "url_and_start":
            given = ", ".join(ctx["given"])
            return (
                f"url uses a service that is already running, so {given} (for a service `up` starts) "
                "cannot be set too: remove url to let `beamlink up` start the service, or remove "
                f"{given}"
            )
        endpoint = ENDPOINT_EXPLAINER.problem(kind, ctx, value, key)
        return endpoint if endpoint is not None else COLLECTION_EXPLAINER.problem(kind, ctx, value, key)


_EXPLAINER = _SiteExplainer()


@dataclass(frozen=True)
class LoadedSite:
    """A validated site and where it lives; ``raw`` keeps the YAML each agent's config is written from."""

    site: Site
    source: str
    base: Path
    raw: dict[str, Any]
    home: Path

    def collection_root(self, name: str) -> Path:
        return _resolve(self.site.collections[name].root, self.base)

    def endpoint_config_text(self, name: str) -> str:
        entry = self.raw.get("endpoints", {}).get(name) or {}
        return _written_from(self.source) + yaml.safe_dump(entry, sort_keys=False)

    def collection_config_text(self, name: str) -> str:
        entry = {k: v for k, v in (self.raw["collections"][name] or {}).items() if k != "root"}
        entry = {"root_path": str(self.collection_root(name)), **entry}
        return _written_from(self.source) + yaml.safe_dump(entry, sort_keys=False)


def _written_from(source: str) -> str:
    return f"# Written by `beamlink up` from {source}: edit the site, not this file.\n"


def _resolve(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _loaded(site: Site, text: str, *, source: str, base: Path, home: Path | None) -> LoadedSite:
    raw = yaml.safe_load(text) or {}
    if home is not None:
        resolved = home.expanduser().resolve()
    elif site.service.home is not None:
        resolved = _resolve(site.service.home, base)
    elif site.service.url is not None:
        resolved = default_home()
    else:
        resolved = base / "site-home"
    return LoadedSite(site, source, base, raw, resolved)


def load_site(path: Path, *, home: Path | None = None) -> LoadedSite:
    """Read and validate a site file; ConfigError names the file, key, line and fix. ``home`` overrides."""
    path = Path(path).expanduser().resolve()
    site = load_model(path, Site, explainer=_EXPLAINER)
    return _loaded(site, path.read_text(), source=str(path), base=path.parent, home=home)


def parse_site(text: str, *, base: Path, source: str = "site.yaml", home: Path | None = None) -> LoadedSite:
    """Validate site text; relative paths are resolved against ``base``."""
    site = parse_model(text, Site, source=source, explainer=_EXPLAINER)
    return _loaded(site, text, source=source, base=base.resolve(), home=home)


def demo_site(home: Path | None = None) -> LoadedSite:
    """The built-in demo site, in ``home`` (default ``$BEAMLINK_HOME/demo-site``)."""
    where = (home or default_home() / "demo-site").expanduser().resolve()
    return parse_site(DEMO_SITE, base=where, source="the built-in demo site", home=where)


# -- what `up` started ----------------------------------------------------------------------------------


class ServiceRecord(BaseModel):
    url: str
    started: bool = Field(description="Started by `up` (so `down` stops it), rather than found running.")
    pid: int | None = None
    started_at: float | None = Field(default=None, description="The process's start time (pid recycling).")


class SiteState(BaseModel):
    """``<home>/site-state.json``, written before agents start, so ``down`` can stop a half-started site."""

    source: str
    service: ServiceRecord | None = None
    collections: list[str] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list)

    @classmethod
    def read(cls, home: Path) -> SiteState | None:
        path = home / STATE_FILE
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ConfigError(
                f"{path} is damaged ({exc.__class__.__name__}): stop the agents with "
                f"`beamlink endpoint stop`/`beamlink collection stop` and delete it",
                details={"path": str(path)},
            ) from None

    def write(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=home)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.model_dump_json(indent=2) + "\n")
            os.replace(tmp, home / STATE_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def remove(home: Path) -> None:
        (home / STATE_FILE).unlink(missing_ok=True)

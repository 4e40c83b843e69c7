"""What an app deployed where: function ids with their checksums and the flow, per service URL.

Kept in ``$BEAMLINK_HOME/apps/deployments.json`` (Gladier keeps the same in ``~/.gladier``), so a
second run registers nothing and redeploys nothing unless the code changed. The record is a cache: an
id the service no longer knows is replaced, and a lost record is rebuilt (the flow is found again by
its app keyword).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from beamlink.protocol.flows import FlowInfo

__all__ = ["Deployment", "DeploymentRecord", "KnownApp", "KnownFunction"]


class KnownFunction(BaseModel):
    id: str
    checksum: str


class KnownApp(BaseModel):
    functions: dict[str, KnownFunction] = Field(default_factory=dict)
    flow_id: str | None = None
    flow_checksum: str | None = None

    def set_function(self, key: str, function_id: str, checksum: str) -> None:
        self.functions[key] = KnownFunction(id=function_id, checksum=checksum)


@dataclass
class Deployment:
    """The outcome of :meth:`App.deploy`: the flow, every function's id, and what changed."""

    flow: FlowInfo
    function_ids: dict[str, str]
    registered: list[str] = field(default_factory=list)
    flow_action: str = "unchanged"


class DeploymentRecord:
    def __init__(self, home: Path) -> None:
        self.path = Path(home) / "apps" / "deployments.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, url: str, app: str) -> KnownApp:
        raw = self._read().get(url.rstrip("/"), {}).get(app)
        try:
            return KnownApp.model_validate(raw) if raw else KnownApp()
        except ValueError:
            return KnownApp()

    def put(self, url: str, app: str, known: KnownApp) -> None:
        data = self._read()
        data.setdefault(url.rstrip("/"), {})[app] = known.model_dump(mode="json")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole and renamed, so two runs at once never leave half a file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".deployments-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

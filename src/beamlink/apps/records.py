"""What every app's search record carries besides its science: figures and files as references to the
portal collection, plot data, a thumbnail and the run that produced it (endpoint side, pure).

The portal reads these keys (``images``, ``files``, ``thumbnail``, ``plots``, ``run_id``); see the
search section of the README.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["record_number", "with_portal_files"]


def record_number(value: Any) -> float | int | None:
    """A number for a record field as it is (an int stays an int), or None when absent, not a number,
    NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


def with_portal_files(
    content: dict[str, Any],
    *,
    figures: dict[str, Any],
    portal_collection: str,
    portal_dir: str,
    files: Sequence[tuple[Any, str, str]] = (),
    run_id: str | None = None,
) -> dict[str, Any]:
    """``content`` with the figures a plot step made (``figures["images"]``: name and caption of each
    PNG; ``figures["plots"]``: plot data) and ``files`` (name, caption, mimetype; a name that is not a
    string, e.g. None for a file a step did not write, is skipped) referenced where the results transfer
    puts them: ``portal_collection:portal_dir/<name>``."""
    base = portal_dir.rstrip("/")

    def reference(name: str, caption: str | None, mimetype: str) -> dict[str, Any]:
        return {
            "collection": portal_collection,
            "path": f"{base}/{name}",
            "name": name,
            "caption": caption,
            "mimetype": mimetype,
        }

    images = [reference(i["name"], i.get("caption"), "image/png") for i in figures.get("images", [])]
    others = [reference(name, caption, kind) for name, caption, kind in files if isinstance(name, str)]
    content.update(images=images, files=[*images, *others], plots=figures.get("plots", []))
    if images:
        content["thumbnail"] = images[0]
    if run_id:
        content["run_id"] = run_id
    return content

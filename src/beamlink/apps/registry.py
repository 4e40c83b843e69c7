"""Apps by name: the ones beamlink ships and any a facility package adds through an entry point.

A package adds an app with, in its ``pyproject.toml``::

    [project.entry-points."beamlink.apps"]
    tomo = "my_facility.tomo:app"      # an App, or a function without arguments returning one

and ``beamlink app list`` shows it once the package is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from beamlink.apps.app import App
from beamlink.errors import BeamlinkError, InvalidInput, NotFound

__all__ = ["ENTRY_POINT_GROUP", "AppEntry", "app_entries", "load_app"]

ENTRY_POINT_GROUP = "beamlink.apps"


@dataclass(frozen=True)
class AppEntry:
    name: str
    target: str
    package: str | None

    def load(self) -> App:
        point = EntryPoint(self.name, self.target, ENTRY_POINT_GROUP)
        try:
            loaded = point.load()
            app = loaded() if callable(loaded) and not isinstance(loaded, App) else loaded
        except BeamlinkError:
            raise
        except Exception as exc:
            raise InvalidInput(
                f"the app {self.name!r} ({self.target}, from {self.package or 'an unknown package'}) failed "
                f"to load: {type(exc).__name__}: {exc}. Fix or reinstall that package",
                details={"app": self.name},
            ) from exc
        if not isinstance(app, App):
            raise InvalidInput(
                f"the entry point {self.name!r} = {self.target!r} gives a {type(app).__name__}, not an App",
                details={"app": self.name},
            )
        return app


def app_entries() -> dict[str, AppEntry]:
    """Every installed app by name (the first package wins when two use one name)."""
    found: dict[str, AppEntry] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        package = point.dist.name if point.dist is not None else None
        found.setdefault(point.name, AppEntry(point.name, point.value, package))
    return dict(sorted(found.items()))


def load_app(name: str) -> App:
    entries = app_entries()
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(entries) or "none"
        raise NotFound(
            f"no app named {name!r} is installed (installed: {known}); `beamlink app list` shows them, and a "
            f"package adds one with an entry point in the group {ENTRY_POINT_GROUP!r}",
            details={"app": name},
        )
    return entry.load()

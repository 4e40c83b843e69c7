"""Who may fetch a file through the portal: a reader of it on its collection (the API's download check),
or anyone who can see a search record that references it (publishing a record publishes its files).

Every refusal, a path leading out of the collection included, is the same NotFound: the portal never
says whether a file it will not serve exists.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput, NotFound, PermissionDenied
from beamlink.service.auth.principal import Principal
from beamlink.service.search.records import file_is_published
from beamlink.service.transfer import collections
from beamlink.service.transfer.streaming import FileSource

__all__ = ["authorise_file"]


def _not_found(ref: str, path: str) -> NotFound:
    return NotFound(
        f"file {path!r} of collection {ref!r} not found (or not visible to you)",
        details={"collection": ref, "path": path},
    )


def authorise_file(
    session: Session, principal: Principal | None, ref: str, path: str
) -> tuple[FileSource, str]:
    """The collection to stream from and the normalized path, or NotFound."""
    try:
        normal = collections.normalize_path(path)
    except InvalidInput as exc:  # NUL characters
        raise _not_found(ref, path.replace("\x00", "")) from exc
    except PermissionDenied as exc:  # PathOutsideCollection: '..' leading out of the root
        raise _not_found(ref, path) from exc
    if not normal:
        raise _not_found(ref, path)
    collection = collections.find_collection(session, principal, ref)
    if collection is None:
        raise _not_found(ref, normal)
    try:
        collections.get_collection(session, principal, collection.id, "reader", path=normal)
    except (NotFound, PermissionDenied) as exc:
        if not file_is_published(session, principal, collection.id, normal):
            raise _not_found(ref, normal) from exc
    return FileSource.of(collection), normal

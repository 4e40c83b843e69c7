"""The collection registry and who may do what where in a collection.

Roles on a collection (the one permission layer, :mod:`beamlink.service.auth.permissions`): ``viewer``
(see that it exists), ``reader`` (list, stat, download, transfer from), ``writer`` (mkdir, rename,
delete, transfer into). The owner (and an admin) holds them all and alone manages the collection and its
rules. Others get them from *access rules*, which unlike grants are scoped to a path prefix: a rule
``read`` on ``raw/`` gives ``reader`` under ``raw/`` only, and ``viewer`` on the collection. A collection
with ``public_read`` gives everyone, anonymous callers included, ``reader`` everywhere (the portal
downloads images through it).
"""

from __future__ import annotations

import posixpath
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from beamlink.errors import Conflict, InvalidInput, NotFound, PathOutsideCollection, PermissionDenied
from beamlink.protocol.collections import (
    CollectionHello,
    CollectionInfo,
    CollectionRegister,
    CollectionRegistered,
    CollectionUpdate,
    RuleCreate,
    RuleInfo,
)
from beamlink.service import agent_rows
from beamlink.service.auth import permissions
from beamlink.service.auth.grants import resolve_principal
from beamlink.service.auth.models import Group, User
from beamlink.service.auth.principal import Principal
from beamlink.service.transfer.models import Collection, CollectionRule

__all__ = [
    "COLLECTION_POLICY",
    "add_rule",
    "collection_for_paths",
    "collection_info",
    "collections_query",
    "delete_collection",
    "delete_rule",
    "get_collection",
    "list_rules",
    "mark_connected",
    "normalize_path",
    "register_collection",
    "registered_info",
    "update_collection",
]

COLLECTION_POLICY = permissions.Policy(
    object_type="collection",
    implies={"viewer": frozenset(), "reader": frozenset({"viewer"}), "writer": frozenset({"reader"})},
)
_RULE_ROLE = {"read": "reader", "read-write": "writer"}


def normalize_path(path: str) -> str:
    """A root-relative path in canonical form ('' is the root); refuses climbing out of the root.

    The agent confines paths again against the real filesystem (symlinks); this check lets the service
    refuse the obvious cases and match rule prefixes on canonical paths.
    """
    if "\x00" in path:
        raise InvalidInput(
            "a path cannot contain a NUL character", details={"path": path.replace("\x00", "")}
        )
    stripped = path.strip("/")
    if not stripped:
        return ""
    normal = posixpath.normpath(stripped)
    if normal == ".." or normal.startswith("../"):
        raise PathOutsideCollection(
            f"path {path!r} leads out of the collection: paths are relative to the collection's root",
            details={"path": path},
        )
    return "" if normal == "." else normal


def _covers(prefix: str, path: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def find_collection(session: Session, principal: Principal | None, ref: str) -> Collection | None:
    """By id, else by name among the caller's own collections."""
    collection = session.get(Collection, ref)
    if collection is None and principal is not None:
        collection = session.scalar(
            select(Collection).where(Collection.owner_id == principal.id, Collection.name == ref)
        )
    return collection


def _rule_roles(
    session: Session, principal: Principal | None, collection: Collection, path: str | None
) -> set[str]:
    """Roles from the access rules (and public_read) that apply to ``path`` (None: anywhere)."""
    roles = {"reader"} if collection.public_read else set()
    if principal is None:
        return roles
    rules = session.scalars(
        select(CollectionRule).where(
            CollectionRule.collection_id == collection.id,
            permissions.principal_clause(principal, CollectionRule),
        )
    )
    for rule in rules:
        roles.add("viewer")
        if path is None or _covers(rule.path, path):
            roles.add(_RULE_ROLE[rule.permission])
    return roles


def get_collection(
    session: Session,
    principal: Principal | None,
    ref: str,
    role: str = "viewer",
    *,
    path: str | None = None,
) -> Collection:
    """The collection, if the caller holds ``role`` on it (at ``path``, for reader/writer).

    Invisible collections answer NotFound, like every object; a visible one the caller may not use at
    ``path`` answers PermissionDenied naming the path and the role.
    """
    collection = find_collection(session, principal, ref)
    what = f"collection {ref!r}"
    if collection is None:
        raise NotFound(f"{what} not found (or you have no access to it)", details={"collection": ref})
    extra = _rule_roles(session, principal, collection, path)
    held = permissions.roles_of(session, principal, COLLECTION_POLICY, collection, extra=extra)
    if not held:
        raise NotFound(f"{what} not found (or you have no access to it)", details={"collection": ref})
    if role not in held and "owner" not in held:
        where = f" at {path!r}" if path else ""
        verb = {"reader": "read", "writer": "write"}.get(role, f"act as {role}")
        raise PermissionDenied(
            f"you may not {verb} in collection {collection.name!r}{where}: ask its owner "
            f"({collection.owner.username}) for an access rule",
            details={"collection_id": collection.id, "path": path, "required_role": role},
        )
    return collection


def collection_for_paths(
    session: Session, principal: Principal | None, ref: str, role: str, paths: list[str]
) -> Collection:
    """The collection, if the caller holds ``role`` at every one of ``paths`` (checked normalized; none
    means the root). What a file operation checks before it asks the collection's agent."""
    found = None
    for path in [normalize_path(p) for p in paths] or [""]:
        found = get_collection(session, principal, ref, role, path=path)
    assert found is not None
    return found


def _require_owner(session: Session, principal: Principal, collection: Collection) -> None:
    held = permissions.roles_of(session, principal, COLLECTION_POLICY, collection)
    if "owner" not in held:
        raise PermissionDenied(
            f"collection {collection.name!r} ({collection.id}) belongs to {collection.owner.username}: "
            "only its owner may start, register, change or delete it, or manage its access rules",
            details={"collection_id": collection.id, "owner": collection.owner.username},
        )


def register_collection(
    session: Session, principal: Principal, body: CollectionRegister, collection_id: str | None = None
) -> tuple[Collection, str]:
    """Create (first start) or update (later starts) a collection; returns it and a fresh agent secret."""
    if collection_id is not None:
        collection = session.get(Collection, collection_id)
        if collection is None:
            raise NotFound(
                f"collection {collection_id} is not registered with this service (it may have been "
                "deleted): remove collection.json from the profile, or run `beamlink collection delete` "
                "and configure again",
                details={"collection_id": collection_id},
            )
        _require_owner(session, principal, collection)
        collection.name = body.name
    else:
        collection = session.scalar(
            select(Collection).where(Collection.owner_id == principal.id, Collection.name == body.name)
        ) or Collection(
            name=body.name, owner_id=principal.id, config={}, stats={}, data_key=secrets.token_bytes(32).hex()
        )
        session.add(collection)
    collection.description = body.description
    collection.host = body.host
    collection.root_path = body.root_path
    collection.config = body.config
    secret = agent_rows.issue_secret(collection)
    session.flush()
    return collection, secret


def update_collection(session: Session, principal: Principal, ref: str, body: CollectionUpdate) -> Collection:
    collection = get_collection(session, principal, ref)
    _require_owner(session, principal, collection)
    if body.description is not None:
        collection.description = body.description
    if body.public_read is not None:
        collection.public_read = body.public_read
    return collection


def collections_query(principal: Principal | None, *, owned_only: bool = False) -> Select[Collection]:
    if principal is not None and owned_only:
        return select(Collection).where(Collection.owner_id == principal.id)
    if principal is not None and principal.is_admin:
        return select(Collection)
    ruled = select(CollectionRule.collection_id).where(
        permissions.principal_clause(principal, CollectionRule)
    )
    clauses: list[Any] = [Collection.public_read.is_(True), Collection.id.in_(ruled)]
    if principal is not None:
        clauses.append(Collection.owner_id == principal.id)
    return select(Collection).where(or_(*clauses))


def delete_collection(session: Session, principal: Principal, ref: str, *, force: bool = False) -> Collection:
    collection = get_collection(session, principal, ref)
    _require_owner(session, principal, collection)
    if collection.online and not force:
        raise Conflict(
            f"collection {collection.name!r} is online: stop it first "
            f"(`beamlink collection stop {collection.name}`), or delete with --force",
            details={"collection_id": collection.id},
        )
    session.delete(collection)
    return collection


# -- access rules ------------------------------------------------------------------------------------


def _rule_info(session: Session, rule: CollectionRule) -> RuleInfo:
    if rule.principal_type == "user":
        user = session.get(User, rule.principal_id)
        name = user.username if user is not None else None
    else:
        group = session.get(Group, rule.principal_id)
        name = group.name if group is not None else None
    return RuleInfo(
        id=rule.id,
        collection_id=rule.collection_id,
        principal_type=rule.principal_type,
        principal_id=rule.principal_id,
        principal_name=name,
        path=rule.path,
        permission=rule.permission,
        created_at=rule.created_at,
    )


def add_rule(session: Session, principal: Principal, ref: str, body: RuleCreate) -> RuleInfo:
    collection = get_collection(session, principal, ref)
    _require_owner(session, principal, collection)
    principal_id = resolve_principal(session, body.principal_type, body.principal)
    assert principal_id is not None  # user and group rules always name someone
    rule = CollectionRule(
        collection_id=collection.id,
        principal_type=body.principal_type,
        principal_id=principal_id,
        path=normalize_path(body.path),
        permission=body.permission,
    )
    session.add(rule)
    session.flush()
    return _rule_info(session, rule)


def list_rules(session: Session, principal: Principal, ref: str) -> list[RuleInfo]:
    collection = get_collection(session, principal, ref)
    _require_owner(session, principal, collection)
    rules = session.scalars(
        select(CollectionRule)
        .where(CollectionRule.collection_id == collection.id)
        .order_by(CollectionRule.created_at)
    )
    return [_rule_info(session, rule) for rule in rules]


def delete_rule(session: Session, principal: Principal, ref: str, rule_id: str) -> None:
    collection = get_collection(session, principal, ref)
    _require_owner(session, principal, collection)
    rule = session.get(CollectionRule, rule_id)
    if rule is None or rule.collection_id != collection.id:
        raise NotFound(
            f"rule {rule_id} not found on collection {collection.name!r}", details={"rule_id": rule_id}
        )
    session.delete(rule)


# -- the agent ---------------------------------------------------------------------------------------


def mark_connected(session: Session, collection: Collection, hello: CollectionHello) -> datetime:
    """Record a connection and what the agent reports of itself; returns the connection's time."""
    collection.root_path = hello.root_path
    collection.data_url = hello.data_url
    collection.checksum_algorithm = hello.checksum_algorithm
    return agent_rows.mark_connected(
        collection, host=hello.host, agent_version=hello.agent_version, stats=hello.stats
    )


def collection_info(collection: Collection) -> CollectionInfo:
    return CollectionInfo(
        id=collection.id,
        name=collection.name,
        description=collection.description,
        owner_id=collection.owner_id,
        owner=collection.owner.username,
        created_at=collection.created_at,
        status=collection.status,
        connected_at=collection.connected_at,
        last_heartbeat=collection.last_heartbeat,
        disconnected_at=collection.disconnected_at,
        host=collection.host,
        root_path=collection.root_path,
        data_url=collection.data_url,
        public_read=collection.public_read,
        config=collection.config,
        stats=collection.stats,
        agent_version=collection.agent_version,
    )


def registered_info(collection: Collection, secret: str) -> CollectionRegistered:
    return CollectionRegistered(
        **collection_info(collection).model_dump(), agent_secret=secret, data_key=collection.data_key
    )

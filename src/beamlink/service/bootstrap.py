"""Getting a database ready: check the path, migrate, and on an empty service create the first admin."""

from __future__ import annotations

import logging
import os

from beamlink.config import Settings
from beamlink.credentials import Credentials, write_credentials
from beamlink.service.auth.tokens import issue_token
from beamlink.service.auth.users import create_first_admin
from beamlink.service.db.engine import Database, ensure_sqlite_path
from beamlink.service.db.migrate import upgrade

__all__ = ["prepare_database"]

log = logging.getLogger(__name__)


def prepare_database(settings: Settings, database: Database) -> None:
    """Idempotent: safe on every start."""
    ensure_sqlite_path(database.url)
    upgrade(database)
    with database.transaction() as session:
        created = create_first_admin(session, settings.admin_username, settings.admin_password)
        if created is None:
            return
        admin, password = created
        token, raw = issue_token(
            session, admin, name="local admin (first start)", ttl_seconds=settings.token_ttl_seconds
        )
        expires = token.expires_at.isoformat()
    write_credentials(
        settings.credentials_path,
        Credentials(
            url=settings.effective_public_url,
            token=raw,
            token_id=token.id,
            username=admin.username,
            expires_at=expires,
        ),
    )
    if settings.admin_password is None:
        secret_file = settings.server_dir / "admin-password"
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        log.info("first start: created admin %r; its password is in %s", admin.username, secret_file)
    else:
        log.info("first start: created admin %r with the configured password", admin.username)
    log.info("a token for the local user is in %s", settings.credentials_path)

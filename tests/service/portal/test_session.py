"""Session helpers without a service: the persisted secret, CSRF tokens, where a login may lead."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from beamlink.config import Settings
from beamlink.service.db.engine import Database
from beamlink.service.portal.secret import SECRET_FILE, derived_key
from beamlink.service.portal.session import CsrfRejected, check_csrf, csrf_token, login_url, safe_next
from beamlink.service.state import ServiceState


def test_the_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    key = derived_key(tmp_path, "csrf")
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    derived_key.cache_clear()
    assert derived_key(tmp_path, "csrf") == key  # read back after a restart
    assert derived_key(tmp_path, "other") != key


def test_csrf_tokens_are_bound_to_their_session(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    state = ServiceState(settings=settings, db=Database(f"sqlite:///{tmp_path / 'x.db'}"))
    try:
        token = csrf_token(state, "blk_session-a")
        assert token == csrf_token(state, "blk_session-a")
        check_csrf(state, "blk_session-a", token)
        for binding, submitted in (
            ("blk_session-b", token),
            ("blk_session-a", token[:-1] + ("1" if token.endswith("0") else "0")),  # one character off
            ("blk_session-a", ""),
            ("blk_session-a", None),
            (None, token),
            ("", ""),
        ):
            with pytest.raises(CsrfRejected):
                check_csrf(state, binding, submitted)
    finally:
        state.db.dispose()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "/portal/"),
        ("/portal/runs?status=FAILED", "/portal/runs?status=FAILED"),
        ("https://evil.example/portal", "/portal/"),
        ("//evil.example/portal", "/portal/"),
        ("/portal\\..\\evil", "/portal/"),
        ("/v1/auth/whoami", "/portal/"),
    ],
)
def test_a_login_leads_only_into_the_portal(raw: str | None, expected: str) -> None:
    assert safe_next(raw) == expected


def test_the_login_url_keeps_the_page_and_the_reason() -> None:
    assert login_url("/portal/runs/abc") == "/portal/login?next=%2Fportal%2Fruns%2Fabc"
    assert login_url("/portal/", expired=True) == "/portal/login?reason=expired"
    assert login_url("https://evil.example/") == "/portal/login"

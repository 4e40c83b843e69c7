"""Browser fixtures: Debian's Chromium driven by Playwright (sync API), never a browser Playwright downloads.

Chromium is looked up on the PATH; when it is missing and the tests run as root (CI, the development
machines) it is installed with apt-get, its output shown as it goes; otherwise the session fails saying
how to install it. Screenshots go to ``test-artifacts/screenshots/`` at the repository root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from beamlink.service.launcher import ServiceProcess
from portal_helpers import sign_in

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
_APT_TIMEOUT = 900


def _say(line: str) -> None:
    # Past pytest's capture: an install that takes minutes should not look like a hang.
    sys.__stderr__.write(f"[browser tests] {line}\n")
    sys.__stderr__.flush()


def _apt(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", *args]
    _say("running " + " ".join(command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        _say(line.rstrip())
    if process.wait(timeout=_APT_TIMEOUT) != 0:
        pytest.fail(f"{' '.join(command)} failed with exit code {process.returncode} (its output is above)")


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(
            "the browser tests need Debian's Chromium and it is not installed: run `sudo apt-get install "
            "-y --no-install-recommends chromium` (running the tests as root installs it)"
        )
    _say("Chromium is not installed: installing Debian's package (a minute or two)")
    _apt("update")
    _apt("install", "-y", "--no-install-recommends", "chromium")
    found = _find_chromium()
    if not found:
        pytest.fail("apt-get installed chromium but no `chromium` command is on the PATH")
    _say(f"using {found}")
    return found


# Module scope, not session: Playwright's sync API keeps an asyncio loop running on the main thread while
# it is open, and every later test that calls asyncio.run() would fail under it.
@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Chromium's sandbox needs user namespaces, which a root process in a container does not get.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=chromium_executable, headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Open a browser context (desktop width unless told), closed at the end of the test."""
    opened: list[BrowserContext] = []

    def open_context(viewport: dict[str, int] | None = None) -> BrowserContext:
        # Reduced motion: no highlight animations half-way through a screenshot.
        context = browser.new_context(viewport=viewport or DESKTOP, reduced_motion="reduce")
        context.set_default_timeout(15_000)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


@pytest.fixture
def page(new_context: Callable[..., BrowserContext]) -> Page:
    """An anonymous visitor's tab."""
    return new_context().new_page()


@pytest.fixture
def signed_in_tab(new_context: Callable[..., BrowserContext], service: ServiceProcess) -> Callable[..., Page]:
    """Open a tab signed in as a user; the session cookie comes from the login form (over HTTP, to keep
    the tests quick; one test signs in by typing into the form)."""

    def open_tab(username: str, password: str, viewport: dict[str, int] | None = None) -> Page:
        with sign_in(service.url, username, password) as client:
            token = client.cookies["beamlink_session"]
        context = new_context(viewport)
        context.add_cookies(
            [
                {
                    "name": "beamlink_session",
                    "value": token,
                    "domain": service.host,
                    "path": "/portal",
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
            ]
        )
        return context.new_page()

    return open_tab


@pytest.fixture
def shoot() -> Callable[[Page, str], Path]:
    """Save a full-page screenshot as a test artifact."""

    def save(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save

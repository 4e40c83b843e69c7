"""Helpers shared by the portal's HTTP tests (tests/service/portal) and browser tests (tests/browser):
signing in through the login form, a collection agent serving real files, a small PNG, a slow flow."""

from __future__ import annotations

import re
import struct
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person

__all__ = [
    "SLOW_FLOW",
    "csrf_in",
    "png_bytes",
    "running_collection",
    "sign_in",
]

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]*)"')

# Steps that take long enough for a page to watch them happen: a sleeping action, then a timer.
SLOW_FLOW = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": {"ready": True}, "ResultPath": "$.prepared", "Next": "Hello"},
        "Hello": {
            "Type": "Action",
            "ActionUrl": "beamlink:hello_world",
            "Parameters": {"echo_string": "hello from the portal test", "sleep_time": 1.5},
            "ResultPath": "$.hello",
            "Next": "Settle",
        },
        "Settle": {"Type": "Wait", "Seconds": 1, "Next": "Finish"},
        "Finish": {"Type": "Pass", "End": True},
    },
}


def csrf_in(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


@contextmanager
def sign_in(url: str, username: str, password: str) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the portal through its login form, as a browser would be."""
    with httpx.Client(base_url=url, timeout=30) as client:
        form = client.get("/portal/login")
        fields = {"username": username, "password": password, "csrf_token": csrf_in(form.text)}
        answer = client.post("/portal/login", data=fields)
        assert answer.status_code == 303, answer.text
        assert client.cookies.get("beamlink_session")
        yield client


def png_bytes(width: int = 48, height: int = 32, *, tint: int = 0) -> bytes:
    """A real, decodable RGB PNG (a colour gradient; ``tint`` rotates its colours), made without any
    imaging library."""

    def pixel(x: int, y: int) -> bytes:
        channels = [x * 255 // width, y * 255 // height, 160]
        return bytes(channels[tint % 3 :] + channels[: tint % 3])

    rows = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@contextmanager
def running_collection(
    service: ServiceProcess, admin: Client, tmp_path: Path, files: dict[str, bytes]
) -> Iterator[tuple[Person, str]]:
    """A new user with a collection agent (started through the CLI, as tests/e2e do) serving ``files``."""
    username = f"owner-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    admin.create_user(username, password)
    home = tmp_path / username
    home.mkdir()
    person = Person(username, password, home, service.url, Client(service.url, token="-", home=home))
    login = person.cli("login", "--username", username, "--password-stdin", input=password + "\n")
    assert login.code == 0, login.stderr
    person.client = Client(service.url, home=home)
    root = tmp_path / f"{username}-data"
    root.mkdir(parents=True)
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (tmp_path / "outside.txt").write_text("not in any collection")
    person.configure_collection("data", root)
    collection_id = person.start_collection("data")
    try:
        yield person, collection_id
    finally:
        person.cli("collection", "stop", "data")
        person.client.close()

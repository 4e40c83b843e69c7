"""The portal's file route against a real collection agent: readers and published records may fetch a
file, nobody else, and no path leads out of the collection."""

from __future__ import annotations

import http.client
import uuid
from pathlib import Path

import httpx
import pytest

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from helpers import MakeUser
from portal_helpers import png_bytes, running_collection, sign_in

pytestmark = pytest.mark.slow  # a real collection agent: about ten seconds


def _raw_get(service: ServiceProcess, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written: httpx would normalise '..' segments before sending them."""
    connection = http.client.HTTPConnection(service.host, service.port, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_files_are_served_to_readers_and_through_published_records_only(
    admin: Client, make_user: MakeUser, service: ServiceProcess, tmp_path: Path
) -> None:
    image = png_bytes()
    files = {
        "images/beam.png": image,
        "raw/private.h5": b"p" * 100,
        "notes.html": b"<script>alert(1)</script>",
    }
    with running_collection(service, admin, tmp_path, files) as (owner, collection_id):
        base = f"/portal/files/{collection_id}"
        with sign_in(service.url, owner.username, owner.password) as browser:
            mine = browser.get(f"{base}/images/beam.png")
            assert mine.status_code == 200
            assert mine.content == image
            assert mine.headers["content-type"] == "image/png"
            ranged = browser.get(f"{base}/raw/private.h5", headers={"Range": "bytes=0-9"})
            assert ranged.status_code == 206
            assert ranged.content == b"p" * 10
            download = browser.get(f"{base}/raw/private.h5?download=1")
            assert download.headers["content-disposition"].startswith("attachment;")
            html = browser.get(f"{base}/notes.html")
            assert "sandbox" in html.headers["content-security-policy"]  # an owner's HTML cannot run script

        anonymous = httpx.get(f"{service.url}{base}/images/beam.png")
        assert anonymous.status_code == 404
        stranger = make_user("stranger")
        with sign_in(service.url, stranger.username, stranger.password) as other:
            assert other.get(f"{base}/images/beam.png").status_code == 404

        # Publishing a public record that references the image lets everyone fetch that file, not others.
        index = f"files-{uuid.uuid4().hex[:8]}"
        owner.client.create_index(index)
        owner.client.ingest(
            index,
            {
                "subject": "beam",
                "entries": [
                    {
                        "visible_to": ["public"],
                        "content": {
                            "title": "Beam",
                            "thumbnail": {"collection": collection_id, "path": "images/beam.png"},
                        },
                    }
                ],
            },
        )
        published = httpx.get(f"{service.url}{base}/images/beam.png")
        assert published.status_code == 200
        assert published.content == image
        assert httpx.get(f"{service.url}{base}/raw/private.h5").status_code == 404

        for path in (
            f"{base}/../../outside.txt",
            f"{base}/images/../../outside.txt",
            f"{base}/%2e%2e/%2e%2e/outside.txt",
            f"{base}/..%2f..%2foutside.txt",
            f"{base}/images%2f..%2f..%2f..%2foutside.txt",
            f"{base}//{tmp_path}/outside.txt",
            f"{base}/%00",
        ):
            status, body = _raw_get(service, path)
            assert status in (400, 404), (path, status)
            assert b"not in any collection" not in body
        with sign_in(service.url, owner.username, owner.password) as browser:
            for path in (f"{base}/%2e%2e/outside.txt", f"{base}/{tmp_path}/outside.txt"):
                refused = browser.get(path)
                assert refused.status_code in (400, 404), path
                assert b"not in any collection" not in refused.content

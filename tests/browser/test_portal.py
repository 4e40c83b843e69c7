"""The portal in a real browser against a real service and a real collection agent: signing in through the
form, a run's timeline advancing live, search facets, a record's images and plot, a private record, and the
dashboard following an agent's state. Screenshots are saved in test-artifacts/screenshots/.

The pages read the same domain functions on both databases (tests/service/portal covers them on
PostgreSQL too), so the browser runs on SQLite only: twice the time would buy nothing.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from beamlink.protocol.transfers import TransferCreate, TransferItem
from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from e2e_helpers import Person
from helpers import MakeUser
from portal_helpers import SLOW_FLOW, png_bytes, running_collection

# About 30 s for the module (a service, a collection agent, Chromium): slow by this project's measure.
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("service", ["sqlite"], indirect=True)]

OpenTab = Callable[..., Page]
IMAGES_LOADED = "[...document.images].every((img) => img.complete && img.naturalWidth > 0)"


def wait_for_images(page: Page, timeout: float = 10.0) -> None:
    # Not page.wait_for_function: it evaluates its predicate with eval(), which the portal's CSP forbids.
    deadline = time.monotonic() + timeout
    while not page.evaluate(IMAGES_LOADED):
        assert time.monotonic() < deadline, "the page's images did not load"
        page.wait_for_timeout(100)


Shoot = Callable[[Page, str], Path]


@dataclass
class Gallery:
    """A collection serving images, and an index of records that reference them."""

    index: str
    collection_id: str
    owner: Person
    run_id: str
    private_subject: str


def _file(collection_id: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"collection": collection_id, "path": path, **extra}


def _g2_plot() -> dict[str, Any]:
    lags = [10 ** (-5 + 5 * i / 39) for i in range(40)]
    return {
        "title": "Intensity autocorrelation g₂(τ)",
        "x_label": "lag τ (s)",
        "y_label": "g₂",
        "log_x": True,
        "series": [
            {"name": f"q = {q} nm⁻¹", "x": lags, "y": [1 + 0.22 * math.exp(-2 * t / tau) for t in lags]}
            for q, tau in (("0.010", 0.05), ("0.020", 0.012))
        ],
    }


def _records(cid: str, run_id: str, owner: str) -> list[dict[str, Any]]:
    def record(subject: str, content: dict[str, Any], visible_to: str = "public") -> dict[str, Any]:
        return {"subject": subject, "entries": [{"visible_to": [visible_to], "content": content}]}

    return [
        record(
            "xpcs/scan-0001",
            {
                "title": "XPCS scan 0001 — colloidal silica in glycerol",
                "description": "Speckle series at 295 K; the two-time correlation shows equilibrium "
                "dynamics. Fitted relaxation times per q are in the plot.",
                "keywords": ["XPCS", "dynamics"],
                "instrument": "8-ID-I",
                "sample": "silica 50 nm",
                "temperature_K": 295,
                "detector": {"name": "Rigaku 3M", "frames": 10000, "exposure_s": 0.001},
                "thumbnail": _file(cid, "images/speckle.png"),
                "images": [
                    _file(cid, "images/speckle.png", caption="Averaged speckle pattern"),
                    _file(cid, "images/twotime.png", caption="Two-time correlation"),
                ],
                "plots": [_g2_plot()],
                "files": [_file(cid, "raw/scan-0001.h5", size=4096, mimetype="application/x-hdf5")],
                "run_id": run_id,
            },
        ),
        record(
            "xpcs/scan-0002",
            {
                "title": "XPCS scan 0002 — aging gel",
                "description": "The same sample after 12 h: slower, stretched relaxation.",
                "keywords": ["XPCS", "aging"],
                "instrument": "8-ID-I",
                "thumbnail": _file(cid, "images/twotime.png"),
            },
        ),
        record(
            "xpcs/scan-0003",
            {
                "title": "XPCS scan 0003 — nanoparticle diffusion",
                "keywords": ["XPCS", "dynamics"],
                "instrument": "8-ID-E",
                "thumbnail": _file(cid, "images/beam.png"),
            },
        ),
        record(
            "ssx/lysozyme-01",
            {
                "title": "SSX lysozyme, chip 1",
                "description": "Serial crystallography hits from a fixed-target chip.",
                "keywords": ["SSX", "crystallography"],
                "instrument": "12-ID-B",
                "thumbnail": _file(cid, "images/beam.png"),
            },
        ),
        record(
            "hedm/ti64-grain-map",
            {
                "title": "HEDM grain map of Ti-6Al-4V",
                "keywords": ["HEDM", "microstructure"],
                "instrument": "1-ID-E",
            },
        ),
        record(
            "xpcs/embargoed-0004",
            {"title": "Embargoed XPCS scan", "keywords": ["XPCS"], "instrument": "8-ID-I"},
            visible_to=f"user:{owner}",
        ),
    ]


@pytest.fixture(scope="module")
def gallery(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gallery]:
    files = {
        "images/speckle.png": png_bytes(160, 120, tint=0),
        "images/twotime.png": png_bytes(120, 120, tint=1),
        "images/beam.png": png_bytes(96, 64, tint=2),
        "raw/scan-0001.h5": b"\x89HDF" + b"\0" * 4092,
    }
    with (
        Client(service.url, home=service.home) as admin,
        running_collection(service, admin, tmp_path_factory.mktemp("gallery"), files) as (owner, cid),
    ):
        flow = owner.client.create_flow(
            "XPCS reduction", {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
        )
        run = owner.client.run_flow(flow.id, {}, label="scan-0001 reduction")
        owner.client.wait_run(run.run_id, timeout=30)
        index = f"beamline-{uuid.uuid4().hex[:6]}"
        owner.client.create_index(
            index, display_name="Beamline results", description="Reduced data from the beamlines"
        )
        owner.client.ingest(index, {"records": _records(cid, run.run_id, owner.username)})
        yield Gallery(index, cid, owner, run.run_id, "xpcs/embargoed-0004")


def _record_url(service: ServiceProcess, gallery: Gallery, subject: str) -> str:
    return f"{service.url}/portal/records/{gallery.index}/{quote(subject, safe='')}"


def test_a_run_advances_live_on_its_page(
    make_user: MakeUser, service: ServiceProcess, signed_in_tab: OpenTab, shoot: Shoot
) -> None:
    user = make_user("watcher")
    flow = user.client.create_flow("Slow steps", SLOW_FLOW, description="A sleeping action, then a timer.")
    run = user.client.run_flow(flow.id, {"sample": "silica", "_private_token": "s3cret"}, label="live run")
    tab = signed_in_tab(user.username, user.password)
    tab.goto(f"{service.url}/portal/runs/{run.run_id}")
    steps = tab.locator("[data-timeline] li.step")
    before = steps.count()
    tab.evaluate("window.notReloaded = true")

    expect(tab.locator('[data-timeline] li[data-step-key="/Finish/1"]')).to_be_visible(timeout=20_000)
    expect(tab.locator("[data-run-badge] .badge")).to_have_text("succeeded")
    expect(tab.locator('[data-timeline] li[data-step-key="flow/End"]')).to_have_class(re.compile("succeeded"))
    assert tab.evaluate("window.notReloaded") is True  # the steps arrived over the event stream
    assert steps.count() > before
    assert [steps.nth(i).get_attribute("data-step-key") for i in range(steps.count())] == [
        "flow/Start",
        "/Prepare/1",
        "/Hello/1",
        "/Settle/1",
        "/Finish/1",
        "flow/End",
    ]
    expect(tab.locator("[data-event-log]")).to_contain_text("FlowSucceeded")
    assert "s3cret" not in tab.content()
    expect(tab.locator("[data-run-cancel]")).to_have_count(0)
    shoot(tab, "run")


def test_search_facets_narrow_the_results(
    gallery: Gallery,
    service: ServiceProcess,
    page: Page,
    new_context: Callable[..., BrowserContext],
    shoot: Shoot,
) -> None:
    page.goto(f"{service.url}/portal/search?index={gallery.index}")
    cards = page.locator("article.result")
    expect(cards).to_have_count(5)  # the embargoed record is not for anonymous visitors
    expect(page.locator("[data-result-count]")).to_have_text("5 results")
    thumb = cards.first.locator(".result-thumb img")
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.naturalWidth") > 0

    page.locator("label.facet-option", has_text="XPCS").click()
    page.wait_for_url(re.compile(r"f=keywords%3AXPCS"))
    expect(cards).to_have_count(3)
    for i in range(3):
        expect(cards.nth(i).locator(".chip", has_text="XPCS")).to_be_visible()
    expect(page.locator("label.facet-option", has_text="XPCS").locator("input")).to_be_checked()

    page.locator("fieldset.facet", has_text="Instrument").locator("label", has_text="8-ID-I").click()
    page.wait_for_url(re.compile(r"f=instrument%3A8-ID-I"))
    expect(cards).to_have_count(2)
    wait_for_images(page)
    shoot(page, "search-facets")

    phone = new_context({"width": 390, "height": 844}).new_page()
    phone.goto(page.url)
    expect(phone.locator("article.result")).to_have_count(2)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    wait_for_images(phone)
    shoot(phone, "search-phone")

    page.fill("input[name=q]", "title:(unclosed")
    page.press("input[name=q]", "Enter")
    expect(page.locator("p.alert")).to_be_visible()


def test_a_record_shows_its_images_plot_files_and_run(
    gallery: Gallery, service: ServiceProcess, page: Page, signed_in_tab: OpenTab, shoot: Shoot
) -> None:
    page.goto(_record_url(service, gallery, "xpcs/scan-0001"))
    expect(page.locator("h1")).to_have_text("XPCS scan 0001 — colloidal silica in glycerol")
    images = page.locator(".gallery img")
    expect(images).to_have_count(2)
    for i in range(2):
        expect(images.nth(i)).to_have_js_property("complete", True)
        assert images.nth(i).evaluate("img => img.naturalWidth") > 0
    expect(page.locator(".table.meta")).to_contain_text("detector.frames")
    expect(page.locator(".files a")).to_have_attribute("href", re.compile(r"\?download=1$"))

    plot = page.locator("figure[data-plot] svg")
    expect(plot).to_be_visible()
    expect(page.locator(".plot-legend span")).to_have_count(2)
    assert "10⁻⁵" in plot.inner_html()  # a log axis labels its decades
    box = plot.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.4)
    tip = page.locator(".plot-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("g₂ =")
    expect(page.locator("a", has_text="View the run")).to_have_count(0)  # anonymous: the run is not theirs
    shoot(page, "record")

    owner = signed_in_tab(gallery.owner.username, gallery.owner.password)
    owner.goto(_record_url(service, gallery, "xpcs/scan-0001"))
    owner.locator("a", has_text="View the run that made it").click()
    owner.wait_for_url(f"**/portal/runs/{gallery.run_id}")
    expect(owner.locator("h1")).to_have_text("scan-0001 reduction")


def test_an_anonymous_visitor_is_refused_a_private_record_until_signing_in(
    gallery: Gallery, service: ServiceProcess, page: Page, shoot: Shoot
) -> None:
    url = _record_url(service, gallery, gallery.private_subject)
    answer = page.goto(url)
    assert answer is not None
    assert answer.status == 404
    expect(page.locator("h1")).to_have_text("Not found, or not visible to you")
    assert "Embargoed" not in page.content()
    shoot(page, "record-not-visible")

    page.locator(".error-page a", has_text="Sign in").click()
    expect(page.locator("input[name=next]")).to_have_value(re.compile(r"embargoed-0004$"))
    shoot(page, "login")
    page.fill("input[name=username]", gallery.owner.username)
    page.fill("input[name=password]", gallery.owner.password)
    page.click("button[type=submit]")
    page.wait_for_url(url)  # back where the visitor was going
    expect(page.locator("h1")).to_have_text("Embargoed XPCS scan")
    expect(page.locator(".usermenu summary")).to_contain_text(gallery.owner.username)


def test_the_dashboard_follows_its_agents_and_signs_out(
    gallery: Gallery, service: ServiceProcess, signed_in_tab: OpenTab, shoot: Shoot
) -> None:
    owner = gallery.owner
    phone = signed_in_tab(owner.username, owner.password, {"width": 390, "height": 844})
    phone.goto(f"{service.url}/portal/")
    expect(phone.locator("h1")).to_have_text("Dashboard")
    shoot(phone, "dashboard-phone")

    tab = signed_in_tab(owner.username, owner.password)
    copy = TransferCreate(
        source=gallery.collection_id,
        destination=gallery.collection_id,
        items=[TransferItem(source_path="images", destination_path="copies", recursive=True)],
        label="images → copies",
    )
    transfer = owner.client.submit_transfer(copy)
    tab.goto(f"{service.url}/portal/transfers/{transfer.id}")
    expect(tab.locator("[data-transfer-badge] .badge")).to_have_text("succeeded", timeout=20_000)
    expect(tab.locator('[data-count="files"]')).to_have_text("3")
    shoot(tab, "transfer")

    tab.goto(f"{service.url}/portal/")
    agent = tab.locator(f'[data-agent-id="{gallery.collection_id}"] .badge')
    expect(agent).to_have_text("Connected")
    expect(tab.locator("[data-run-id]")).to_contain_text("scan-0001 reduction")
    shoot(tab, "dashboard")

    assert owner.cli("collection", "stop", "data").code == 0
    expect(agent).to_have_text("Disconnected", timeout=15_000)  # the page polls; no reload

    tab.locator(".usermenu summary").click()
    tab.locator(".usermenu button", has_text="Sign out").click()
    tab.wait_for_url(re.compile(r"/portal/login\?reason=signed-out"))
    expect(tab.locator(".notice")).to_have_text("You are signed out.")
    tab.goto(f"{service.url}/portal/runs")
    tab.wait_for_url(re.compile(r"/portal/login\?next=%2Fportal%2Fruns"))

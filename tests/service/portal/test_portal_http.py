"""The portal over plain HTTP against a real service process (SQLite and PostgreSQL): sessions, CSRF,
escaping, anonymous visitors, the live streams and the pages' contents."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from beamlink.sdk import Client
from beamlink.service.launcher import ServiceProcess
from helpers import MakeUser
from portal_helpers import SLOW_FLOW, csrf_in, sign_in


def _index(admin: Client) -> str:
    name = f"portal-{uuid.uuid4().hex[:8]}"
    admin.create_index(name, display_name="Portal test records")
    return name


def test_signing_in_sets_a_strict_cookie_and_signing_out_revokes_the_token(
    make_user: MakeUser, service: ServiceProcess
) -> None:
    user = make_user("portal")
    anonymous = httpx.get(f"{service.url}/portal/")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/portal/login"
    assert httpx.get(f"{service.url}/").headers["location"] == "/portal/"

    with httpx.Client(base_url=service.url) as browser:
        form = browser.get("/portal/login")
        token = csrf_in(form.text)
        wrong = browser.post(
            "/portal/login", data={"username": user.username, "password": "nope", "csrf_token": token}
        )
        assert wrong.status_code == 401
        assert "the username or password is wrong" in wrong.text
        ok = browser.post(
            "/portal/login",
            data={
                "username": user.username,
                "password": user.password,
                "csrf_token": token,
                "next": "/portal/runs",
            },
        )
        assert ok.status_code == 303
        assert ok.headers["location"] == "/portal/runs"
        cookie = ok.headers["set-cookie"]
        assert "beamlink_session=blk_" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
        assert "Path=/portal" in cookie
        raw = browser.cookies["beamlink_session"]
        dashboard = browser.get("/portal/")
        assert dashboard.status_code == 200
        assert user.username in dashboard.text
        assert "default-src 'self'" in dashboard.headers["content-security-policy"]

        out = browser.post("/portal/logout", data={"csrf_token": csrf_in(dashboard.text)})
        assert out.status_code == 303
        assert out.headers["location"] == "/portal/login?reason=signed-out"
    whoami = httpx.get(f"{service.url}/v1/auth/whoami", headers={"Authorization": f"Bearer {raw}"})
    assert whoami.status_code == 401
    assert whoami.json()["code"] == "TOKEN_REVOKED"


def test_a_login_never_redirects_off_the_portal(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user("portal")
    with httpx.Client(base_url=service.url) as browser:
        for target in ("https://evil.example/", "//evil.example/x", "/v1/auth/whoami"):
            form = browser.get("/portal/login")
            answer = browser.post(
                "/portal/login",
                data={
                    "username": user.username,
                    "password": user.password,
                    "csrf_token": csrf_in(form.text),
                    "next": target,
                },
            )
            assert answer.headers["location"] == "/portal/"
            browser.cookies.clear()


def test_a_form_without_its_csrf_token_is_refused(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user("portal")
    with sign_in(service.url, user.username, user.password) as browser:
        for data in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}):
            refused = browser.post("/portal/logout", data=data)
            assert refused.status_code == 403
            assert "This form has expired" in refused.text
            assert "text/html" in refused.headers["content-type"]
        assert browser.get("/portal/").status_code == 200  # still signed in: nothing was done

        # A token from another session does not fit this one.
        other = make_user("other")
        with sign_in(service.url, other.username, other.password) as elsewhere:
            foreign = csrf_in(elsewhere.get("/portal/").text)
        assert browser.post("/portal/logout", data={"csrf_token": foreign}).status_code == 403

    with httpx.Client(base_url=service.url) as stranger:  # the login form is bound to its page too
        answer = stranger.post("/portal/login", data={"username": user.username, "password": user.password})
        assert answer.status_code == 403
        assert "beamlink_session" not in stranger.cookies


@pytest.mark.parametrize("how", ["expired", "revoked"])
def test_a_stale_session_redirects_to_the_login_page_keeping_the_page(
    make_user: MakeUser, service: ServiceProcess, how: str
) -> None:
    user = make_user("portal")
    issued = user.client.create_token("portal session", ttl_seconds=1 if how == "expired" else 3600)
    if how == "expired":
        time.sleep(1.3)
    else:
        user.client.revoke_token(issued.token_id)
    with httpx.Client(base_url=service.url, cookies={"beamlink_session": issued.access_token}) as browser:
        answer = browser.get("/portal/runs?status=FAILED")
        assert answer.status_code == 303
        assert (
            answer.headers["location"]
            == "/portal/login?next=%2Fportal%2Fruns%3Fstatus%3DFAILED&reason=expired"
        )
        assert (
            'beamlink_session=""' in answer.headers["set-cookie"]
            or "Max-Age=0" in answer.headers["set-cookie"]
        )
        login = browser.get(answer.headers["location"])
        assert "Your session expired — sign in again." in login.text
        assert 'name="next" value="/portal/runs?status=FAILED"' in login.text


def test_script_and_html_in_record_content_render_as_text(admin: Client, service: ServiceProcess) -> None:
    index = _index(admin)
    evil = "<script>alert('owned')</script>"
    admin.ingest(
        index,
        {
            "subject": "evil/<b>subject</b>",
            "entries": [
                {
                    "visible_to": ["public"],
                    "content": {
                        "title": evil,
                        "description": '<img src=x onerror="alert(1)"> and <a href="javascript:x">link</a>',
                        "keywords": ["<i>kw</i>"],
                        "<th>key</th>": "</td></tr></table><script>alert(2)</script>",
                        "plots": [
                            {"title": "</script><script>alert(3)</script>", "series": [{"x": [1], "y": [2]}]}
                        ],
                    },
                }
            ],
        },
    )
    record = httpx.get(f"{service.url}/portal/records/{index}/evil%2F%3Cb%3Esubject%3C%2Fb%3E")
    assert record.status_code == 200
    html = record.text
    for raw in (
        "<script>alert",
        '<img src=x onerror="alert(1)">',
        "<b>subject</b>",
        "<i>kw</i>",
        "<th>key</th>",
    ):
        assert raw not in html
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "\\u003c/script\\u003e" in html  # the plot's JSON cannot close its script element
    assert "script-src 'self'" in record.headers["content-security-policy"]

    results = httpx.get(f"{service.url}/portal/search", params={"index": index})
    assert results.status_code == 200
    assert "<script>alert" not in results.text
    assert "&lt;script&gt;" in results.text, results.text[results.text.find("<main") :]


def test_anonymous_visitors_see_public_records_only(
    admin: Client, make_user: MakeUser, service: ServiceProcess
) -> None:
    index = _index(admin)
    reader = make_user("reader")
    admin.ingest(
        index,
        {
            "records": [
                {
                    "subject": "open",
                    "entries": [{"visible_to": ["public"], "content": {"title": "Open data"}}],
                },
                {
                    "subject": "closed",
                    "entries": [
                        {"visible_to": [f"user:{reader.username}"], "content": {"title": "Embargoed"}}
                    ],
                },
            ]
        },
    )
    search = httpx.get(f"{service.url}/portal/search", params={"index": index})
    assert search.status_code == 200
    assert "Open data" in search.text
    assert "Embargoed" not in search.text
    assert httpx.get(f"{service.url}/portal/records/{index}/open").status_code == 200
    hidden = httpx.get(f"{service.url}/portal/records/{index}/closed")
    assert hidden.status_code == 404
    assert "not visible to you" in hidden.text
    assert "/portal/login?next=" in hidden.text
    with sign_in(service.url, reader.username, reader.password) as browser:
        assert "Embargoed" in browser.get(f"/portal/records/{index}/closed").text
        assert "Embargoed" in browser.get("/portal/search", params={"index": index}).text
    for page in ("/portal/", "/portal/runs", "/portal/transfers", "/portal/flows", "/portal/status.json"):
        assert httpx.get(f"{service.url}{page}").status_code == 303


def test_a_bad_query_is_explained_on_the_page(admin: Client, service: ServiceProcess) -> None:
    index = _index(admin)
    answer = httpx.get(f"{service.url}/portal/search", params={"index": index, "q": 'title:"unclosed'})
    assert answer.status_code == 200
    assert 'class="alert"' in answer.text
    unknown = httpx.get(f"{service.url}/portal/search", params={"index": "no-such-index"})
    assert unknown.status_code == 404


def test_run_pages_hide_secrets_and_stream_to_the_end(make_user: MakeUser, service: ServiceProcess) -> None:
    user = make_user("runner")
    flow = user.client.create_flow(
        "secretive",
        {
            "StartAt": "Echo",
            "States": {
                "Echo": {
                    "Type": "Pass",
                    "Parameters": {"seen.$": "$.who"},
                    "ResultPath": "$.echo",
                    "End": True,
                }
            },
        },
    )
    run = user.client.run_flow(flow.id, {"who": "beamline 7", "_private_password": "hunter2"}, label="tidy")
    user.client.wait_run(run.run_id, timeout=30)
    with sign_in(service.url, user.username, user.password) as browser:
        page = browser.get(f"/portal/runs/{run.run_id}")
        assert page.status_code == 200
        assert "hunter2" not in page.text
        assert "beamline 7" in page.text
        assert 'data-step-key="/Echo/1"' in page.text
        assert "FlowSucceeded" in page.text
        with browser.stream("GET", f"/portal/runs/{run.run_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            body = "".join(stream.iter_text())
        assert "event: log" in body
        assert "event: step" in body
        assert "event: status" in body
        assert body.rstrip().endswith('data: {"status": "SUCCEEDED"}')
        assert "hunter2" not in body
        for listing in (
            "/portal/runs",
            "/portal/runs?status=SUCCEEDED",
            "/portal/flows",
            f"/portal/flows/{flow.id}",
        ):
            shown = browser.get(listing)
            assert shown.status_code == 200, listing
            assert "tidy" in shown.text or "secretive" in shown.text
        assert browser.get("/portal/runs/not-a-run").status_code == 404
        assert browser.get("/portal/runs/not-a-run/events").status_code == 404
        status = browser.get("/portal/status.json").json()
        assert status["runs"][0]["id"] == run.run_id

    stranger = make_user("stranger")
    with sign_in(service.url, stranger.username, stranger.password) as other:
        assert other.get(f"/portal/runs/{run.run_id}").status_code == 404


def test_unknown_pages_and_bad_parameters_are_friendly_pages(
    make_user: MakeUser, service: ServiceProcess
) -> None:
    user = make_user("portal")
    with sign_in(service.url, user.username, user.password) as browser:
        missing = browser.get("/portal/no/such/page")
        assert missing.status_code == 404
        assert "text/html" in missing.headers["content-type"]
        assert "there is no page at /portal/no/such/page" in missing.text
        bad = browser.get("/portal/runs?page=0")
        assert bad.status_code == 422
        assert "text/html" in bad.headers["content-type"]
    assert (
        httpx.get(f"{service.url}/v1/no-such-route").json()["code"] == "ROUTE_NOT_FOUND"
    )  # the API is untouched
    css = httpx.get(f"{service.url}/portal/static/portal.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]


def test_a_run_is_canceled_from_its_page_with_the_form_only(
    make_user: MakeUser, service: ServiceProcess
) -> None:
    user = make_user("canceler")
    flow = user.client.create_flow("slow", SLOW_FLOW)
    run = user.client.run_flow(flow.id, {})
    with sign_in(service.url, user.username, user.password) as browser:
        page = browser.get(f"/portal/runs/{run.run_id}")
        assert "Cancel run" in page.text
        forged = browser.post(f"/portal/runs/{run.run_id}/cancel")
        assert forged.status_code == 403
        assert user.client.get_run(run.run_id).status == "ACTIVE"
        done = browser.post(f"/portal/runs/{run.run_id}/cancel", data={"csrf_token": csrf_in(page.text)})
        assert done.status_code == 303
        assert done.headers["location"] == f"/portal/runs/{run.run_id}"
        assert user.client.wait_run(run.run_id, timeout=30).status == "ENDED"
        ended = browser.get(f"/portal/runs/{run.run_id}")
        assert "Cancel run" not in ended.text
        assert 'class="step canceled"' in ended.text


def test_search_pages_through_results_and_filters_by_url(admin: Client, service: ServiceProcess) -> None:
    index = _index(admin)
    _index(admin)  # a second index: the page offers a choice
    records = [
        {
            "subject": f"scan-{n:02d}",
            "entries": [
                {
                    "visible_to": ["public"],
                    "content": {"title": f"Scan {n}", "keywords": ["even" if n % 2 == 0 else "odd"]},
                }
            ],
        }
        for n in range(13)
    ]
    admin.ingest(index, {"records": records})
    first = httpx.get(f"{service.url}/portal/search", params={"index": index})
    assert first.text.count('class="result"') == 10
    assert "13 results" in first.text
    assert "data-next-page" in first.text
    second = httpx.get(f"{service.url}/portal/search", params={"index": index, "page": 2})
    assert second.text.count('class="result"') == 3
    assert "← Previous" in second.text
    odd = httpx.get(f"{service.url}/portal/search", params={"index": index, "f": "keywords:odd"})
    assert "6 results" in odd.text
    assert 'value="keywords:odd" checked' in odd.text
    assert 'select id="index" name="index"' in odd.text


def test_an_index_declaring_facets_gets_them_and_a_histogram_bucket_filters_by_range(
    admin: Client, service: ServiceProcess
) -> None:
    index = f"portal-{uuid.uuid4().hex[:8]}"
    admin.create_index(
        index,
        facets=[
            {"field_name": "hit_rate", "type": "numeric_histogram", "histogram_range": {"low": 0, "high": 1}},
            {"field_name": "sample", "type": "terms"},
            {"field_name": "n_hits", "type": "sum"},
        ],
    )
    assert [f.field_name for f in admin.get_index(index).facets] == ["hit_rate", "sample", "n_hits"]
    records = [
        {
            "subject": f"run-{n}",
            "entries": [
                {
                    "visible_to": ["public"],
                    "content": {
                        "title": f"Run {n}",
                        "hit_rate": round(n / 10 + 0.05, 2),
                        "sample": f"lyso-{n % 2}",
                        "n_hits": n,
                    },
                }
            ],
        }
        for n in range(10)
    ]
    admin.ingest(index, {"records": records})
    page = httpx.get(f"{service.url}/portal/search", params={"index": index})
    assert "Hit rate" in page.text
    assert 'value="hit_rate:0.3..0.4"' in page.text
    assert "0.3 to 0.4" in page.text
    assert 'value="sample:lyso-0"' in page.text
    assert "data-facet-total>45<" in page.text  # sum of n_hits
    assert "Keywords" not in page.text  # declared facets replace the guessed ones
    # A bucket is a range filter; two buckets of one facet are either-or, two facets both.
    url = f"{service.url}/portal/search"
    one = httpx.get(url, params={"index": index, "f": "hit_rate:0.3..0.4"})
    assert "1 result" in one.text
    assert 'value="hit_rate:0.3..0.4" checked' in one.text
    two = httpx.get(url, params={"index": index, "f": ["hit_rate:0.3..0.4", "hit_rate:0.5..0.6"]})
    assert "2 results" in two.text
    odd = ["hit_rate:0.3..0.4", "hit_rate:0.5..0.6", "sample:lyso-1"]
    assert "2 results" in httpx.get(url, params={"index": index, "f": odd}).text
    even = ["hit_rate:0.3..0.4", "hit_rate:0.5..0.6", "sample:lyso-0"]
    assert "0 results" in httpx.get(url, params={"index": index, "f": even}).text
    # An index's owner may change its facets; an empty list goes back to guessing.
    assert admin.update_index(index, facets=[]).facets == []

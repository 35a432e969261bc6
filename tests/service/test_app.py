"""What :func:`datamarket.service.app.create_app` adds beside the routers: ``GET /`` leads a person to
the portal, outside the JSON API's schema."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.service_support import db_url, make_app  # noqa: F401  (fixture)


def test_the_root_redirects_to_the_portal_and_is_not_in_the_schema(db_url: str) -> None:  # noqa: F811
    with TestClient(make_app(db_url), base_url="http://127.0.0.1", follow_redirects=False) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/portal/"
        assert c.get("/", follow_redirects=True).url.path == "/portal/login"  # not signed in yet
        assert c.post("/").status_code == 405
        assert "/" not in c.get("/openapi.json").json()["paths"]

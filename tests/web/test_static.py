"""How ``vega-trio serve`` serves the dashboard's files (no browser): content types,
caching, the CSP, no token needed for the page, and no file outside ``web/``."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import httpx2
import trio

from vega_trio.serve._web import WebFiles, find_web_root

from ._browser import TOKEN, web_server

WEB = Path(__file__).resolve().parents[2] / "web"


async def _get(url: str, path: str, **kwargs: object) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=url, timeout=httpx2.Timeout(10)) as client:
        with trio.fail_after(10):
            return await client.get(path, **kwargs)  # type: ignore[arg-type]


async def test_the_page_loads_without_the_token_and_the_api_still_needs_it() -> None:
    """With a token set, GET / answers the page (which then asks for the token) and says
    so in its meta tag; /api still answers 401 without the token."""
    async with web_server(token=TOKEN) as srv:
        page = await _get(srv.url, "/")
        assert page.status_code == 200
        assert '<meta name="vega-auth" content="bearer">' in page.text
        assert (await _get(srv.url, "/api/stats")).status_code == 401
    async with web_server() as srv:
        assert '<meta name="vega-auth" content="none">' in (await _get(srv.url, "/")).text


async def test_index_is_revalidated_and_has_a_strict_csp_allowing_only_its_import_map() -> None:
    """The index is text/html, no-cache, framed by nobody; its CSP allows scripts from
    the origin plus exactly the inline import map (by hash): no unsafe-inline, no eval,
    no inline styles, connections only to the origin."""
    async with web_server() as srv:
        page = await _get(srv.url, "/")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    csp = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in page.headers["content-security-policy"]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL)
    inline = [body for attrs, body in scripts if body.strip()]
    assert [attrs for attrs, body in scripts if body.strip()] == [' type="importmap"']
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert "style=" not in page.text and "<style" not in page.text


async def test_every_asset_the_page_names_is_served_versioned_with_its_type_and_cached() -> None:
    """Every URL in the index and its import map is under /assets/<digest>/, answers 200
    with the right content type and a year of immutable caching; a stale digest, an
    unknown file and a path outside web/ are 404."""
    async with web_server() as srv:
        page = (await _get(srv.url, "/")).text
        import_map = json.loads(re.search(r'type="importmap">(.*?)</script>', page, re.S)[1])
        urls = set(import_map["imports"].values()) | set(
            re.findall(r'(?:src|href)="([^"]+)"', page)
        )
        digest = WebFiles.load(WEB).digest
        assert urls and all(u.startswith(f"/assets/{digest}/") for u in urls), urls
        expected = {
            ".js": "text/javascript",
            ".mjs": "text/javascript",
            ".css": "text/css",
            ".svg": "image/svg+xml",
        }
        for url in sorted(urls):
            response = await _get(srv.url, url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith(expected[Path(url).suffix]), url
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        for page_module in sorted((WEB / "app").rglob("*.js")):
            name = page_module.relative_to(WEB).as_posix()
            assert (await _get(srv.url, f"/assets/{digest}/{name}")).status_code == 200
        stale = await _get(srv.url, "/assets/0000000000000000/app/main.js")
        assert stale.status_code == 404 and stale.headers["cache-control"] == "no-cache"
        assert (await _get(srv.url, f"/assets/{digest}/app/nope.js")).status_code == 404
        for escape in ("../pyproject.toml", "..%2Fpyproject.toml", "%2e%2e/vega_trio/__init__.py"):
            assert (await _get(srv.url, f"/assets/{digest}/{escape}")).status_code == 404


def test_the_digest_changes_with_any_file_of_web(tmp_path: Path) -> None:
    """The assets' URL prefix is a hash of all of web/: changing one file changes it, so
    a browser never keeps an old file under a cached URL."""
    (tmp_path / "index.html").write_text('<script src="%ASSETS%/a.js"></script>')
    (tmp_path / "a.js").write_text("1")
    first = WebFiles.load(tmp_path)
    (tmp_path / "a.js").write_text("2")
    second = WebFiles.load(tmp_path)
    assert first.digest != second.digest
    assert f"/assets/{second.digest}/a.js".encode() in second.index
    assert find_web_root() is not None

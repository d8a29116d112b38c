"""The dashboard (SPEC §10.5): the static files of ``web/`` served at ``/``.

The page is a static application (vendored Preact + htm + signals as ES modules, no build
step); it talks to the server only through the documented ``/api`` routes, so these routes
are not part of the OpenAPI document (they are not ``/api``) and need no token: the page
loads, then asks for the token and sends it as a header.

- ``GET /`` answers ``index.html`` with ``Cache-Control: no-cache`` and a strict
  Content-Security-Policy: scripts only from this origin plus the page's import map
  (allowed by its SHA-256, the one inline ``<script>`` and it is not executable), no
  inline styles, no ``eval``, connections only to this origin.
- Every other file is under ``/assets/<digest>/…``, where ``<digest>`` is a hash of all
  of ``web/``: those URLs change whenever any file does, so they are cached for a year
  (``immutable``); an old digest is a 404 (a reload fetches the new index).

Where ``web/`` is: inside the installed package (``vega_trio/web``, put there by the
wheel's ``force-include``) or, in a source checkout, at the repository's root.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from pathlib import Path

import attrs
from quart import Quart, Response

__all__ = ["WebFiles", "find_web_root", "install_web"]

_PACKAGED = Path(__file__).resolve().parent.parent / "web"
_CHECKOUT = Path(__file__).resolve().parent.parent.parent / "web"
ASSETS_PLACEHOLDER = "%ASSETS%"
"""What ``index.html`` writes where the versioned assets' URL prefix goes."""
_IMPORTMAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".md": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


def find_web_root() -> Path | None:
    """The ``web/`` directory (packaged first, then a source checkout's), or ``None``."""
    for root in (_PACKAGED, _CHECKOUT):
        if (root / "index.html").is_file():
            return root
    return None


def content_security_policy(import_map: str | None) -> str:
    """The page's CSP; ``import_map`` is the exact text of its inline import map."""
    scripts = "'self'"
    if import_map is not None:
        digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
        scripts += f" 'sha256-{digest}'"
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


@attrs.frozen
class WebFiles:
    """The dashboard's files, read once when the server starts (``index`` with the
    assets' prefix filled in; its ``%AUTH%`` is filled in per server)."""

    root: Path
    digest: str
    index: bytes
    csp: str
    files: dict[str, bytes]

    @classmethod
    def load(cls, root: Path) -> WebFiles:
        files: dict[str, bytes] = {}
        hasher = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            relative = path.relative_to(root).as_posix()
            data = path.read_bytes()
            files[relative] = data
            hasher.update(relative.encode() + b"\0" + data + b"\0")
        digest = hasher.hexdigest()[:16]
        text = files.pop("index.html").decode().replace(ASSETS_PLACEHOLDER, f"/assets/{digest}")
        found = _IMPORTMAP.search(text)
        return cls(
            root=root,
            digest=digest,
            index=text.encode(),
            csp=content_security_policy(found.group(1) if found else None),
            files=files,
        )


def _page_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def install_web(app: Quart, *, token: bool, root: Path | None = None) -> WebFiles | None:
    """Serve the dashboard from ``root`` (default: :func:`find_web_root`); without one
    (a build without ``web/``), ``/`` says how to get it. ``token``: whether the server
    has a token (the page then asks for it before its first API call, instead of
    finding out from a 401)."""
    root = root or find_web_root()
    web = WebFiles.load(root) if root is not None else None
    page = web.index.replace(b"%AUTH%", b"bearer" if token else b"none") if web else b""

    @app.route("/", methods=["GET"])
    async def dashboard() -> Response:  # noqa: ASYNC124 - Quart would run a sync view in a thread
        if web is None:
            return Response(
                "vega-trio serve: this installation has no dashboard files (web/); "
                "the API is at /api (see /api/openapi.json). Reinstall vega-trio from a wheel.",
                status=404,
                headers={"Cache-Control": "no-cache"},
                content_type="text/plain; charset=utf-8",
            )
        headers = _page_headers(web.csp)
        headers["Cache-Control"] = "no-cache"  # always revalidated: it names the assets
        return Response(page, headers=headers, content_type="text/html; charset=utf-8")

    @app.route("/assets/<digest>/<path:name>", methods=["GET"])
    async def asset(digest: str, name: str) -> Response:  # noqa: ASYNC124
        data = web.files.get(name) if web is not None and digest == web.digest else None
        if web is None or data is None:
            return Response(
                f"no dashboard file {name!r} in this version; reload the page",
                status=404,
                headers={"Cache-Control": "no-cache"},
                content_type="text/plain; charset=utf-8",
            )
        suffix = Path(name).suffix
        content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
        # The URL names this exact content (the digest): cached for good.
        headers = {"Cache-Control": _IMMUTABLE}
        return Response(data, headers=headers, content_type=content_type)

    return web

"""`/docs` (Swagger UI) and `/redoc` from assets served by this service: nothing is fetched from a CDN.

FastAPI's own pages load swagger-ui and redoc from a CDN (and redoc its fonts from Google), so they are
blank on a machine without internet. The assets come from the `fastapi-offline` package (it ships
swagger-ui-dist and the redoc standalone bundle); FastAPI's page builders are pointed at them, the
Swagger validator badge (which calls validator.swagger.io) is off, and a Content-Security-Policy keeps
the browser from loading anything from another origin.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
STATIC = "/docs-static"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"  # the only URL the redoc bundle fetches by itself
# The page builders write one inline <script> (the Swagger UI set-up); everything else is same-origin.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def _secured(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect and /redoc from local assets (create the app with
    `docs_url=None, redoc_url=None`)."""
    openapi_url = app.openapi_url or "/openapi.json"
    redoc_js = (ASSETS / "redoc.standalone.js").read_text(encoding="utf-8").replace(REDOC_LOGO, f"{STATIC}/favicon.png")

    @app.get(f"{STATIC}/redoc.standalone.js", include_in_schema=False)  # before the mount: it wins
    async def redoc_bundle() -> Response:
        return Response(redoc_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    app.mount(STATIC, StaticFiles(directory=ASSETS), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _secured(get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}", title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js", swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/favicon.png", oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_ui_parameters={"validatorUrl": None}))

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return _secured(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _secured(get_redoc_html(openapi_url=f"{root}{openapi_url}", title=f"{app.title} - API reference",
                                       redoc_js_url=f"{root}{STATIC}/redoc.standalone.js",
                                       redoc_favicon_url=f"{root}{STATIC}/favicon.png", with_google_fonts=False))

"""The browser side, all from this process (no CDN): the web app at `/`, Swagger UI at `/docs`, ReDoc at `/redoc`.

The web app is static files (service/webapp) that call the API from the same origin with the key the user enters
once per browser session. The documentation pages load Swagger UI and ReDoc from the fastapi-offline package
(redoc.html: ReDoc with a content security policy that keeps it on this origin).
"""

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

WEBAPP_DIR = Path(__file__).parent / "webapp"
DOCS_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
WEBAPP_URL = "/app"
DOCS_ASSETS_URL = "/docs-assets"


def install_web(app: FastAPI) -> None:
    """Needs the app built with ``docs_url=None, redoc_url=None``: these pages replace FastAPI's CDN ones."""
    app.mount(WEBAPP_URL, StaticFiles(directory=WEBAPP_DIR), name="webapp")
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    favicon = f"{DOCS_ASSETS_URL}/favicon.png"

    @app.get("/", include_in_schema=False)
    def web_app() -> FileResponse:
        return FileResponse(WEBAPP_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> FileResponse:
        return FileResponse(WEBAPP_DIR / "redoc.html")

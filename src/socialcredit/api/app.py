"""The HTTP door: `create_app(db)` builds the FastAPI app over one store (API under /api/v1, pages at /).

Errors are JSON with a clear message and never a 500 for bad input: located errors from the core
(`LocatedError`, `BatchRejected`) become 422 with their problems listed; bodies over `MAX_BODY` bytes are
refused with 413 before they are read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socialcredit import text
from socialcredit.api.processes import SHUTDOWN_GRACE_S
from socialcredit.api.service import Service
from socialcredit.store import BatchRejected
from socialcredit.yamlio import LocatedError

MAX_BODY = 4 * 1024 * 1024
log = logging.getLogger("socialcredit.api")


class BodyLimit:
    """Read the whole body before the app sees it: refuse more than `limit` bytes (announced by
    Content-Length or streamed in chunks) with 413, and JSON carrying a lone surrogate with 422.

    Reading first means the app never starts work on a body it will refuse, and the framework's own body
    parser never meets an oversized stream (it would answer 400 "error parsing the body").
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _refuse(413, f"request body larger than {self.limit} bytes")(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await _refuse(413, f"request body larger than {self.limit} bytes")(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        where = lone_surrogate(body)
        if where is not None:
            await _refuse(422, f"body: {where}: not valid Unicode text (a lone surrogate)")(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)


def replaying(body: bytes, then: Receive) -> Receive:
    """An ASGI `receive` that hands the app a body already read in full, then defers to `then` (the client's
    own receive, which reports a disconnect): the body guard and the readers read a body before choosing."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return replay


def lone_surrogate(body: bytes) -> str | None:
    """The JSON path of the first string holding a lone surrogate (`"\\ud800"`), or None.

    JSON lets such escapes through and Python decodes them into strings no UTF-8 encoder accepts, so they
    would fail wherever the text is next written (the store, a response, the audit trail). Only bodies
    that contain a surrogate escape at all are parsed here.
    """
    if b"\\ud" not in body.lower():
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parser names the problem

    def walk(x: Any, path: str) -> str | None:
        if isinstance(x, str):
            return (path or "(the whole body)") if text.problem(x) is not None else None
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for k, v in items:
            key = f"{path}.{k}" if path else str(k)
            found = walk(k, key) if isinstance(k, str) else None
            found = found or walk(v, key)
            if found:
                return found
        return None

    return walk(doc, "")


def _refuse(status: int, message: str) -> JSONResponse:
    return SafeJSONResponse({"error": message}, status_code=status)


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: text the input smuggled in as a lone surrogate is escaped, not a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8", errors="backslashreplace"
        )


def create_app(db: str | Path, max_body: int = MAX_BODY, as_of: dt.datetime | None = None) -> FastAPI:
    """The app over store `db`; `as_of` fixes its clock (see `Service`)."""
    return build_app(Service(db, as_of), max_body)


def build_app(service: Service, max_body: int = MAX_BODY) -> FastAPI:
    """The API and pages over `service`: the store's own (`create_app`, the writer) or a reader's
    (`socialcredit.api.reader`, over a published snapshot); the app closes it when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        app.state.service.close()  # a reader's app swaps in newer snapshots' services: close the last one

    app = FastAPI(
        title="socialcredit",
        version="1",
        description="A simulated social credit system, for studying and teaching how such a system works. "
        "Synthetic citizens only.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        docs_url=None,  # served below from the app's own copy of Swagger UI: FastAPI's page loads it from a CDN
        redoc_url=None,
    )
    _docs(app)
    app.state.service = service

    @app.exception_handler(HTTPException)
    @app.exception_handler(StarletteHTTPException)  # the framework's own 404/405/400 too: one error shape
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
        return SafeJSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        return SafeJSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(BatchRejected)
    async def rejected(request: Request, exc: BatchRejected) -> JSONResponse:
        problems = [{"row": p.row, "field": p.field, "message": p.message} for p in exc.problems]
        return SafeJSONResponse(
            {"error": f"batch rejected whole: {len(problems)} problem(s)", "problems": problems}, status_code=422
        )

    @app.exception_handler(LocatedError)
    async def located(request: Request, exc: LocatedError) -> JSONResponse:
        return SafeJSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a fault of ours, not of the input: still JSON, and the message says so (details go to the log)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return SafeJSONResponse(
            {"error": f"internal error ({type(exc).__name__}); the server log has details"}, status_code=500
        )

    from socialcredit.api import routes
    from socialcredit.pages import mount as mount_pages

    app.include_router(routes.router, prefix="/api/v1")
    mount_pages(app)
    app.add_middleware(BodyLimit, limit=max_body)
    return app


DOCS_ASSETS = "/docs/assets"


def _docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the swagger-ui-bundle package, served by this app (no page fetches
    anything from outside the service, the API's own documentation included)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run the app with uvicorn: the one way every door starts a server (`serve`, the demo)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)

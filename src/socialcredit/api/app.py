"""The HTTP door: `create_app(db)` builds the FastAPI app over one store (API under /api/v1, pages at /).

Errors are JSON with a clear message and never a 500 for bad input: located errors from the core
(`LocatedError`, `BatchRejected`) become 422 with their problems listed; bodies over `MAX_BODY` bytes are
refused with 413 before they are read.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socialcredit.api.service import Service
from socialcredit.store import BatchRejected
from socialcredit.yamlio import LocatedError

MAX_BODY = 4 * 1024 * 1024
log = logging.getLogger("socialcredit.api")


class BodyLimit:
    """Refuse request bodies larger than `limit` bytes, whether announced (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.limit)(scope, receive, send)


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"request body larger than {limit} bytes"}, status_code=413)


def create_app(db: str | Path, max_body: int = MAX_BODY, as_of: dt.datetime | None = None) -> FastAPI:
    """The app over store `db`; `as_of` fixes its clock (see `Service`)."""
    service = Service(db, as_of)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        service.close()

    app = FastAPI(
        title="socialcredit",
        version="1",
        description="A simulated social credit system, for studying and teaching how such a system works. "
        "Synthetic citizens only.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(BatchRejected)
    async def rejected(request: Request, exc: BatchRejected) -> JSONResponse:
        problems = [{"row": p.row, "field": p.field, "message": p.message} for p in exc.problems]
        return JSONResponse({"error": f"batch rejected whole: {len(problems)} problem(s)", "problems": problems},
                            status_code=422)

    @app.exception_handler(LocatedError)
    async def located(request: Request, exc: LocatedError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a fault of ours, not of the input: still JSON, and the message says so (details go to the log)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has details"},
                            status_code=500)

    from socialcredit.api import routes
    from socialcredit.pages import mount as mount_pages

    app.include_router(routes.router, prefix="/api/v1")
    mount_pages(app)
    app.add_middleware(BodyLimit, limit=max_body)
    return app

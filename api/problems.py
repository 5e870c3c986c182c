"""RFC 9457 problem+json responses: one table maps every error to a status and a safe message."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import psycopg
import psycopg_pool
from eventsourcing import persistence as es_persistence

from domain.errors import DomainError
from projections.queries import CursorInvalidError

PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _title(error: Exception) -> str:
    doc = (type(error).__doc__ or type(error).__name__).strip().splitlines()[0]
    return doc.rstrip(".")


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    status = error.status if error.status < 500 else 500
    detail = str(error) if status < 500 else None  # never echo internals of a 5xx
    return problem(status, _title(error), detail, code=type(error).__name__)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # Only locations and messages: the offending input may be personal data, so it is not echoed.
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid")} for e in error.errors()]
    return problem(422, "Request is not valid", "see errors", errors=errors)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    response = problem(error.status_code, str(error.detail) if error.detail else "Error")
    response.headers.update(error.headers or {})
    return response


async def _cursor_error(request: Request, error: Exception) -> JSONResponse:
    return problem(422, "Cursor is not valid", "use the next_cursor value of a previous page")


async def _database_down(request: Request, error: Exception) -> JSONResponse:
    return problem(503, "Service unavailable", "the database cannot be reached; try again shortly",
                   headers={"Retry-After": "5"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(CursorInvalidError, _cursor_error)
    for unavailable in (psycopg.OperationalError, psycopg_pool.PoolTimeout, es_persistence.OperationalError,
                        es_persistence.InterfaceError):
        app.add_exception_handler(unavailable, _database_down)

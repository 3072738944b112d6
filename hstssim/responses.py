"""The generic error body {"error":{code,reason,user_message}} and JSON body reading."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

JSON_TYPE = "application/json; charset=utf-8"


class ApiError(Exception):
    """Answer the request with status and the generic error body."""

    def __init__(self, status: int, user_message: str) -> None:
        super().__init__(user_message)
        self.status = status
        self.user_message = user_message


def reason(status: int) -> str:
    """Return the HTTP reason phrase of a status."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(status: int, user_message: str) -> dict[str, Any]:
    """Return the generic error body."""
    return {"error": {"code": status, "reason": reason(status), "user_message": user_message}}


def error_response(status: int, user_message: str) -> JSONResponse:
    """Return a response carrying the generic error body."""
    return JSONResponse(error_body(status, user_message), status_code=status, media_type=JSON_TYPE)


def empty(status: int = 200) -> Response:
    """Return a response with an empty body."""
    return Response(content=b"", status_code=status)


async def read_json(request: Request) -> Any:
    """Parse the request body as JSON whatever its content type; 400 if it is not JSON."""
    try:
        raw = await request.body()
    except ClientDisconnect as exc:
        raise ApiError(400, "Client disconnected before sending its body") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Request body is not valid JSON") from exc


def install_handlers(app: FastAPI) -> None:
    """Make every error the app raises come back as the generic error body."""

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.user_message)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = "Not Found" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, message)

    async def validation_error(_: Request, exc: Exception) -> Response:
        return error_response(400, "Invalid request parameters")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)

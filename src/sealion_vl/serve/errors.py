"""Every refusal in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``.

Bad input is a 4xx that says what was wrong (FastAPI's 422 becomes 400 with the field path);
only a genuine bug is a 500, and it is logged with its traceback.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from sealion_vl.errors import (
    ContextLengthError,
    MediaError,
    MessageFormatError,
    ModalityError,
    SealionError,
    StructuredOutputError,
)

log = logging.getLogger("sealion_vl.serve")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    499: "invalid_request_error",
    503: "overloaded_error",
}

# (exception class, code, param) for the engine's deliberate errors; first match wins
_SEALION = [
    (ContextLengthError, "context_length_exceeded", "messages"),
    (MediaError, "invalid_media", "messages"),
    (ModalityError, "unsupported_modality", "messages"),
    (MessageFormatError, "invalid_messages", "messages"),
    (StructuredOutputError, "invalid_structured_output", None),
    (SealionError, "invalid_request", None),
]


class APIError(Exception):
    """A refusal raised from a route: status, message, param, code (and extra headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(
                status, "server_error" if status >= 500 else "invalid_request_error"
            ),
            "param": param,
            "code": code,
        }
    }


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status, headers=headers)


def error_bytes(status: int, message: str, param: str | None = None, code: str | None = None):
    """The body of an error as bytes (for the raw ASGI middleware)."""
    return json.dumps(error_body(status, message, param, code)).encode()


def _loc(loc) -> str:
    parts = [str(x) for x in loc if x != "body"]
    return ".".join(parts)


def validation_message(errors: list[dict]) -> tuple[str, str | None, str]:
    """(message, param, code) for pydantic / FastAPI validation errors."""
    if any(e.get("type") == "json_invalid" for e in errors):
        err = next(e for e in errors if e.get("type") == "json_invalid")
        detail = (err.get("ctx") or {}).get("error", err.get("msg", ""))
        return f"the request body is not valid JSON: {detail}", None, "invalid_json"
    pieces, first = [], None
    for e in errors[:5]:
        where = _loc(e.get("loc", ()))
        first = first or where or None
        msg = e.get("msg", "invalid value")
        if e.get("type") == "missing" and where:
            pieces.append(f"{where}: required field missing")
        else:
            pieces.append(f"{where}: {msg}" if where else msg)
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(pieces) + more, first, "invalid_value"


def sealion_error(exc: SealionError) -> tuple[str, str | None]:
    for cls, code, param in _SEALION:
        if isinstance(exc, cls):
            return code, param
    return "invalid_request", None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the OpenAI error shape."""

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        message, param, code = validation_message(list(exc.errors()))
        return error_response(400, message, param, code)

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError):
        message, param, code = validation_message(exc.errors())
        return error_response(400, message, param, code)

    @app.exception_handler(SealionError)
    async def _sealion(request: Request, exc: SealionError):
        code, param = sealion_error(exc)
        return error_response(400, str(exc), param, code)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(
            500, f"internal error ({type(exc).__name__}); this is a bug in sealion-vl", None, None
        )

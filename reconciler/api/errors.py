"""The API's error answers: a rejected tenant is a 422 with the loader's own words; the rest name the fix.

Installed by ``api.app.create_app``. A tenant document the request-body model refuses is validated again by the
loader's path (``desired_state.specs``), so the 422 carries the same tenant, field, shortened value and message that
``last_error`` would show had the document been written by SQL; a ``SpecError`` raised by a write or a preview
(catalog, bounds, routes) is already in those words. Stale writes and existing names are 409, unknown tenants 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from desired_state.inputs import TenantInput
from desired_state.specs import SpecError, shorten, spec_error_from_validation
from desired_state.tenant_edits import StaleGeneration, TenantExists, TenantNotFound
from reconciler.api.models import FieldProblem, ValidationProblem

# Routes whose whole body is a tenant document.
TENANT_BODIES = (("POST", "/api/v1/tenants"), ("PUT", "/api/v1/tenants/{name}"))


def field_problem(error: SpecError) -> FieldProblem:
    return FieldProblem(
        tenant=error.tenant, field=error.field, value=error.shown, message=error.message, error=str(error)
    )


def spec_response(error: SpecError) -> JSONResponse:
    problem = ValidationProblem(message=str(error), problems=[field_problem(error)])
    return JSONResponse(problem.model_dump(), status_code=422)


def _tenant_document(request: Request, errors: Sequence[Any], body: object) -> object | None:
    """The tenant document in the body the errors are about, if they are about one."""
    route = request.scope.get("route")
    template = getattr(route, "path", "")
    if (request.method, template) in TENANT_BODIES:
        return body
    locs = [tuple(e.get("loc", ())) for e in errors]
    if isinstance(body, dict) and locs and all(loc[:2] == ("body", "document") for loc in locs):
        return body.get("document")
    return None


def _loader_error(document: object, name: str | None) -> SpecError | None:
    """The loader's error for a document (the same function the loader runs on stored rows)."""
    if not isinstance(document, dict):
        return None
    tenant = name or str(document.get("name", "?"))
    try:
        TenantInput.model_validate(document)
    except ValidationError as exc:
        return spec_error_from_validation(tenant, document, exc)
    return None


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    body = getattr(exc, "body", None)
    spec_error = _loader_error(_tenant_document(request, errors, body), request.path_params.get("name"))
    if spec_error is not None:
        return spec_response(spec_error)
    problems = [
        FieldProblem(
            tenant=str(request.path_params.get("name", "")),
            field=".".join(str(part) for part in e.get("loc", ())),
            value=shorten(repr(e.get("input"))),
            message=str(e.get("msg", "")),
            error=f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', '')}",
        )
        for e in errors
    ]
    message = "; ".join(p.error for p in problems[:4]) or "the request is not valid"
    return JSONResponse(
        ValidationProblem(message=message, problems=problems).model_dump(),
        status_code=422,
    )


async def _spec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    return spec_response(exc)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    headers = {"ETag": f'"{exc.current}"'} if isinstance(exc, StaleGeneration) else None
    return JSONResponse({"message": str(exc)}, status_code=status.HTTP_409_CONFLICT, headers=headers)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"message": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(StaleGeneration, _conflict)
    app.add_exception_handler(TenantExists, _conflict)
    app.add_exception_handler(TenantNotFound, _not_found)

"""The ASGI application of ``reconciler serve``: the API under ``/api/v1``, the console under ``/``, the OpenAPI
document at ``/api/v1/openapi.json`` (generated from the same pydantic models the loader validates with).

``create_app`` wires one ``ApiContext`` (store, settings, nudges, runtime for previews and logs) and the usage
sampler; ``serve`` runs it with uvicorn on ``RECONCILER_API_LISTEN`` (127.0.0.1:8090 unless told otherwise).
Called by ``reconciler.cli`` and by the tests (which serve it on a free port).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from desired_state.database import make_engine
from reconciler import __version__
from reconciler.api import check_views, errors, resources, tenants
from reconciler.api.console import pages
from reconciler.api.context import ApiContext
from reconciler.api.usage import UsageHistory
from reconciler.runtime.settings import Settings

SESSION_COOKIE = "reconciler_session"
SESSION_MAX_AGE = 8 * 3600


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


def create_app(settings: Settings) -> FastAPI:
    secret = settings.api_session_secret.get_secret_value() if settings.api_session_secret else None
    context = ApiContext(
        settings=settings,
        engine=make_engine(settings.database_url),
        session_secret=secret or secrets.token_urlsafe(32),
    )
    history = UsageHistory(context, settings.usage_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        history.start()
        try:
            yield
        finally:
            history.stop()
            context.close()

    app = FastAPI(
        title="tenant-reconciler API",
        version=__version__,
        description="Desired state, status, plans and operations of the tenant reconciler (docs/api.md).",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.usage = history
    app.add_middleware(
        SessionMiddleware,
        secret_key=context.session_secret,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="strict",
        https_only=False,  # served on loopback or behind a TLS-terminating proxy (docs/api.md)
    )
    errors.install(app)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(tenants.router)
    app.include_router(resources.router)
    app.include_router(check_views.router)
    app.include_router(pages.router)

    @app.get("/api/v1/healthz", tags=["health"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and exit 0 (like ``reconciler run``)."""
    import signal
    from collections.abc import Iterator
    from contextlib import contextmanager

    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after its graceful shutdown, which would end the process with -15.
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    host, _, port = settings.api_listen.rpartition(":")
    config = uvicorn.Config(
        create_app(settings), host=host.strip("[]"), port=int(port), log_level="warning", access_log=False
    )
    Server(config).run()
    return 0

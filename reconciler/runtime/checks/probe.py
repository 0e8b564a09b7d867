"""One check's HTTP request through Traefik, as a client of the tenant reaches the service: the web entrypoint's
address (``RECONCILER_CHECK_URL``) with the route's host in the ``Host`` header.

Called by ``checks.runner`` for each check. Bounded: the check's timeout applies to connecting and to each read,
the whole exchange stops reading at its deadline, and at most ``core.checks.MAX_BODY_BYTES`` of the body are read.
No redirect is followed (a redirect is an answer, judged by its status). The request carries no cookie, credential
or header of the tenant's, so nothing secret can come back in a result's detail.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.core.checks import MAX_BODY_BYTES, Check, Response

if TYPE_CHECKING:
    import httpx

# Shown as the request's user agent in the tenant's access logs, so operators can tell checks from clients.
USER_AGENT = "tenant-reconciler-check/1"


def _read(response: httpx.Response, deadline: float) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) >= MAX_BODY_BYTES or time.monotonic() >= deadline:
            break
    return bytes(body[:MAX_BODY_BYTES])


def send(base_url: str, host: str, check: Check, extra: Mapping[str, str] | None = None) -> Response:
    """Send ``check`` to ``base_url`` (``http://127.0.0.1:80``) for ``host``; what came back, or why nothing did.
    ``extra``: headers of the reconciler's own (the canary analysis's version header), never a tenant's."""
    import httpx  # imported by the first check: one-shot commands that check nothing never load it

    started = time.monotonic()
    deadline = started + check.timeout
    url = base_url.rstrip("/") + check.path
    headers = {"Host": host, "User-Agent": USER_AGENT, "Accept": "*/*", **(extra or {})}
    try:
        with (
            httpx.Client(trust_env=False, timeout=check.timeout, follow_redirects=False) as client,
            client.stream(check.method, url, headers=headers) as response,
        ):
            body = _read(response, deadline) if check.method != "HEAD" else b""
            status = response.status_code
    except httpx.TimeoutException:
        return Response(None, latency=time.monotonic() - started, error=f"no answer within {check.timeout:g} s")
    except httpx.HTTPError as exc:
        return Response(None, latency=time.monotonic() - started, error=f"{type(exc).__name__}: {exc}"[:200])
    return Response(status, body, time.monotonic() - started)

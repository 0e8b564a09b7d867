"""Logs of a tenant's containers, read from the Docker engine (the engine's own json-file logs), tail or follow;
from Loki instead when ``RECONCILER_LOKI_URL`` is set (``api.loki_logs``).

Called by ``api.resources`` and the console's log tail. Containers are found by the reconciler's labels (this
owner's, this tenant's), so another owner's or tenant's logs are never shown. Follow polls the engine once a second
for lines newer than the last one sent, for at most ``max_seconds``: a plain HTTP stream any client can read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import docker.errors
from fastapi.concurrency import run_in_threadpool

from reconciler.api.context import ApiContext
from reconciler.api.loki_logs import loki_follow, loki_tail
from reconciler.api.models import LogLine
from reconciler.core.resources import LABEL_OWNER, LABEL_TENANT

MAX_LINE = 4000


def tenant_containers(context: ApiContext, tenant: str) -> list[dict[str, Any]]:
    api = context.runtime.docker.api
    labels = [f"{LABEL_OWNER}={context.settings.owner_id}", f"{LABEL_TENANT}={tenant}"]
    containers: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    return sorted(containers, key=lambda c: str(c["Names"][0]))


def _name(container: dict[str, Any]) -> str:
    return str(container["Names"][0]).lstrip("/")


def _lines(context: ApiContext, container: dict[str, Any], tail: int | str, since: int | None) -> list[tuple[str, str]]:
    """(timestamp, text) of each line; the engine's RFC 3339 timestamp leads every line."""
    kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": True, "tail": tail}
    if since is not None:
        kwargs["since"] = since
    try:
        raw = context.runtime.docker.api.logs(container["Id"], **kwargs)
    except docker.errors.NotFound:
        return []  # removed since it was listed (a replica replaced): its lines went with it
    except docker.errors.APIError:
        return []  # a helper whose logging driver keeps nothing to read (a backup's, say)
    lines = []
    for line in raw.decode(errors="replace").splitlines():
        stamp, _, text = line.partition(" ")
        lines.append((stamp, text[:MAX_LINE]))
    return lines


def tail_logs(context: ApiContext, tenant: str, tail: int) -> list[LogLine]:
    """The last ``tail`` lines of each container of the tenant, in time order (Loki: of them all together)."""
    if context.settings.loki_url:
        return loki_tail(context.settings.loki_url, context.settings.owner_id, tenant, tail)
    found: list[tuple[str, str, str]] = []
    for container in tenant_containers(context, tenant):
        name = _name(container)
        found.extend((stamp, name, text) for stamp, text in _lines(context, container, tail, None))
    return [LogLine(container=name, text=f"{stamp} {text}") for stamp, name, text in sorted(found)]


def _new_lines(
    context: ApiContext, tenant: str, tail: int, first: bool, seen: dict[str, str]
) -> list[tuple[str, str, str]]:
    since = None if first else int(time.time()) - 2
    batch = []
    for container in tenant_containers(context, tenant):
        name = _name(container)
        for stamp, text in _lines(context, container, tail if first else "all", since):
            if stamp > seen.get(name, ""):
                batch.append((stamp, name, text))
    batch.sort()
    for stamp, name, _text in batch:
        seen[name] = max(seen.get(name, ""), stamp)
    return batch


async def follow_logs(context: ApiContext, tenant: str, tail: int, max_seconds: float) -> AsyncIterator[str]:
    """The last lines, then new ones as they come, one ``container | timestamp text`` line each. Asynchronous, so
    the stream ends (and holds no worker thread) as soon as the client goes away."""
    if context.settings.loki_url:
        async for line in loki_follow(context.settings.loki_url, context.settings.owner_id, tenant, tail, max_seconds):
            yield line
        return
    seen: dict[str, str] = {}
    deadline = time.monotonic() + max_seconds
    first = True
    while True:
        for stamp, name, text in await run_in_threadpool(_new_lines, context, tenant, tail, first, seen):
            yield f"{name} | {stamp} {text}\n"
        first = False
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(1.0)

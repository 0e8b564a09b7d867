"""Logs of a tenant's containers read from Loki (``RECONCILER_LOKI_URL``), tail or follow: the alternative to the
engine's logs in ``api.logs``, which picks this module when the URL is set.

The deploy bundle's Promtail labels every container's lines with the reconciler's ownership labels
(``deploy/loki/promtail.yaml``: ``owner``, ``tenant``, ``service``, ``container``), so the LogQL selector
``{owner="<owner id>", tenant="<name>"}`` finds this owner's containers of this tenant and nothing else (the
reconciler's own lines about the tenant carry ``tenant`` but no ``owner``). Lines come from
``/loki/api/v1/query_range`` over the last ``WINDOW``; follow asks every second for lines from the newest one seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from fastapi.concurrency import run_in_threadpool

from reconciler.api.models import LogLine

MAX_LINE = 4000
TIMEOUT = 10.0
WINDOW_NS = 24 * 3600 * 10**9  # tail looks this far back (a tenant silent for a day shows nothing)
FOLLOW_BATCH = 1000  # lines per poll while following
LATE_NS = 10 * 10**9  # how late a line may reach Loki and still be followed

Entry = tuple[int, str, str]  # (nanoseconds since the epoch, container, text)


class LokiUnavailable(RuntimeError):
    """Loki did not answer with lines; the message names where (scheme, host and port: never credentials)."""


def where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(owner: str, tenant: str) -> str:
    return "{owner=" + _quoted(owner) + ", tenant=" + _quoted(tenant) + "}"


def stamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, as the engine writes its timestamps (so both sources read alike)."""
    seconds, fraction = divmod(ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def query(url: str, logql: str, start_ns: int, end_ns: int, limit: int, direction: str) -> list[Entry]:
    """Every line of the answer as (ns, container, text), oldest first."""
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/loki/api/v1/query_range",
            params={
                "query": logql,
                "start": str(start_ns),
                "end": str(end_ns),
                "limit": str(limit),
                "direction": direction,
            },
            timeout=TIMEOUT,
        )
        response.raise_for_status()
        entries: list[Entry] = []
        for stream in response.json()["data"]["result"]:
            labels = stream.get("stream", {})
            container = str(labels.get("container") or labels.get("service") or "?")
            entries.extend((int(ns), container, str(text)[:MAX_LINE]) for ns, text in stream["values"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        raise LokiUnavailable(f"logs not read from Loki at {where(url)}: {type(exc).__name__}") from None
    return sorted(entries)


def _tail_entries(url: str, owner: str, tenant: str, tail: int) -> list[Entry]:
    now = time.time_ns()
    return query(url, selector(owner, tenant), now - WINDOW_NS, now + 1, tail, "backward")[-tail:]


def loki_tail(url: str, owner: str, tenant: str, tail: int) -> list[LogLine]:
    """The last ``tail`` lines of the tenant's containers together (Loki's limit is per query), in time order."""
    entries = _tail_entries(url, owner, tenant, tail)
    return [LogLine(container=container, text=f"{stamp(ns)} {text}") for ns, container, text in entries]


def _line(entry: Entry) -> str:
    ns, container, text = entry
    return f"{container} | {stamp(ns)} {text}\n"


async def loki_follow(url: str, owner: str, tenant: str, tail: int, max_seconds: float) -> AsyncIterator[str]:
    """The last lines, then new ones once a second, ``container | timestamp text`` each, until ``max_seconds``.

    Lines reach Loki late (Promtail batches them) and not in time order across containers, so each poll looks
    ``LATE_NS`` back from the newest line sent and skips what it sent already; a line older than the last one the
    tail showed is never sent. Loki failing ends the stream with a line saying so."""
    logql = selector(owner, tenant)
    deadline = time.monotonic() + max_seconds
    try:
        began = time.time_ns()
        entries = await run_in_threadpool(_tail_entries, url, owner, tenant, tail)
        for entry in entries:
            yield _line(entry)
        floor = entries[-1][0] if entries else began - LATE_NS
        newest = max(floor, began - LATE_NS)
        sent = set(entries)
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            start = max(floor, newest - LATE_NS)
            found = await run_in_threadpool(query, url, logql, start, time.time_ns() + 1, FOLLOW_BATCH, "forward")
            for entry in found:
                if entry[0] < floor or entry in sent:
                    continue
                sent.add(entry)
                newest = max(newest, entry[0])
                yield _line(entry)
            sent = {entry for entry in sent if entry[0] >= newest - LATE_NS}
    except LokiUnavailable as exc:
        yield f"! {exc}\n"

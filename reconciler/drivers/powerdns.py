"""PowerDNS Authoritative HTTP API driver (thin, httpx).

Called by the runtime's ``PowerDnsPublisher`` only: one GET per managed zone per pass (``observe_zone``), at most
one PATCH per zone carrying all its rrset changes (``patch_zone``), a POST when a missing zone may be created.
Zones are converted at once into the core's ``RRset`` values. Library and HTTP errors become the project's
errors: unreachable, timeouts and 5xx → ``TransientError``; 401/403 → ``UnauthorizedError``; 422 →
``RejectedError`` naming the rrset; other 4xx → ``PermanentError``. The API key is sent in a header and never
appears in a log line or an error message. ``requests`` counts requests by method, so tests (and metrics) can
check that an idle pass costs exactly one GET per zone.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from reconciler.core.dns import OwnerMark, RRset, RRsetChange, normalise_name
from reconciler.core.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

# The API answers in well under 0.1 s locally; a few seconds covers a loaded server without stalling a pass.
DEFAULT_TIMEOUT = 5.0
# Account recorded with our comments; ownership is decided by the comment text, never by this field.
COMMENT_ACCOUNT = "tenant-reconciler"
# How PowerDNS names the rrset it refuses: "RRset a.b. IN CNAME: ..." or "Record a.b./A '...': ...".
_REJECTED_RE = re.compile(
    r"RRset (?P<name>\S+) IN (?P<type>[A-Z0-9]+)|Record (?P<rname>[^/\s]+)/(?P<rtype>[A-Z0-9]+) '(?P<content>[^']*)'"
)

RequestHook = Callable[[httpx.Request], None]


SYSTEM = "powerdns"


def _transient(message: str, **fields: Any) -> TransientError:
    return TransientError(message, system=SYSTEM, **fields)


def _permanent(message: str, **fields: Any) -> PermanentError:
    return PermanentError(message, system=SYSTEM, **fields)


class UnauthorizedError(PermanentError):
    """The API key was rejected (401/403). Permanent until someone fixes the key; the runtime still retries."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message, system=SYSTEM, **fields)


class RejectedError(PermanentError):
    """PowerDNS refused a change (422). ``name``/``type`` identify the rrset when the server said which;
    ``content`` is the record content it could not accept, when that was the problem."""

    def __init__(
        self, message: str, *, zone: str, name: str | None, type_: str | None, content: str | None = None
    ) -> None:
        super().__init__(message, system=SYSTEM, operation="patch", key=zone)
        self.zone = zone
        self.name = name
        self.type = type_
        self.content = content


class ZoneError(PermanentError):
    """A zone could not be read or created (missing when creation is off, or refused by the server)."""

    def __init__(self, message: str, *, zone: str) -> None:
        super().__init__(message, system=SYSTEM, key=zone)
        self.zone = zone


# ----------------------------------------------------------------------------- request bodies (pure)


def rrset_body(change: RRsetChange) -> dict[str, Any]:
    """One entry of a PATCH's ``rrsets``. DELETE carries no ttl/records/comments: the swagger says ttl MUST
    NOT be sent with DELETE, while its ``required`` list (stricter than the server) still names them."""
    rrset = change.rrset
    if change.changetype == "DELETE":
        return {"name": rrset.name, "type": rrset.type, "changetype": "DELETE"}
    body: dict[str, Any] = {
        "name": rrset.name,
        "type": rrset.type,
        "ttl": rrset.ttl,
        "changetype": "REPLACE",
        "records": [{"content": content, "disabled": False} for content in rrset.records],
    }
    # REPLACE with comments replaces every comment of the rrset: ours is the only one it keeps.
    body["comments"] = (
        [{"content": rrset.owner.comment(), "account": COMMENT_ACCOUNT}] if rrset.owner is not None else []
    )
    return body


def patch_body(changes: Sequence[RRsetChange]) -> dict[str, Any]:
    return {"rrsets": [rrset_body(change) for change in changes]}


def zone_body(zone: str) -> dict[str, Any]:
    """A Native zone without NS records: the server answers authoritatively for it at once."""
    return {"name": normalise_name(zone), "kind": "Native", "nameservers": []}


def rrset_from_api(item: Mapping[str, Any]) -> RRset:
    """An rrset as the API returns it → the core value. Disabled records do not count as published."""
    owner = None
    for comment in item.get("comments") or []:
        owner = OwnerMark.parse(str(comment.get("content", "")))
        if owner is not None:
            break
    records = [str(r["content"]) for r in item.get("records") or [] if not r.get("disabled", False)]
    return RRset.of(str(item["name"]), str(item["type"]), int(item.get("ttl") or 0), records, owner)


# ----------------------------------------------------------------------------- driver


class PowerDnsDriver:
    def __init__(
        self,
        url: str,
        api_key: str,
        server_id: str = "localhost",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        request_hook: RequestHook | None = None,
    ) -> None:
        base = url.rstrip("/")
        if not base.endswith("/api/v1"):
            base = f"{base}/api/v1"
        self.url = f"{base}/servers/{server_id}"
        self._secret = api_key
        hooks: dict[str, list[Callable[..., Any]]] = {"request": [request_hook]} if request_hook else {}
        # trust_env=False: proxies from the environment must never see the API key.
        self._client = httpx.Client(
            base_url=self.url,
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=timeout,
            trust_env=False,
            event_hooks=hooks,
        )
        self.requests: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    # --- API calls ---------------------------------------------------------------------------------------

    def list_zones(self) -> list[str]:
        response = self._request("GET", "/zones", what="list zones")
        return sorted(normalise_name(str(zone["name"])) for zone in response.json())

    def observe_zone(self, zone: str) -> tuple[RRset, ...] | None:
        """Every rrset of the zone (one GET); None if the zone does not exist."""
        zone = normalise_name(zone)
        response = self._request("GET", f"/zones/{zone}", what=f"read zone {zone}", missing_ok=True)
        if response.status_code == 404:
            return None
        return tuple(rrset_from_api(item) for item in response.json().get("rrsets") or [])

    def create_zone(self, zone: str) -> tuple[RRset, ...] | None:
        """Create a Native zone (one POST); its rrsets as created, or None if it already existed (409)."""
        zone = normalise_name(zone)
        response = self._request("POST", "/zones", json=zone_body(zone), what=f"create zone {zone}", conflict_ok=True)
        if response.status_code == 409:
            return None
        log.info("dns zone %s created", zone)
        return tuple(rrset_from_api(item) for item in response.json().get("rrsets") or [])

    def patch_zone(self, zone: str, changes: Sequence[RRsetChange]) -> None:
        """Apply all changes of one zone in one PATCH (atomic on the server: all or nothing)."""
        if not changes:
            return
        zone = normalise_name(zone)
        self._request("PATCH", f"/zones/{zone}", json=patch_body(changes), what=f"update zone {zone}", zone=zone)

    # --- plumbing ----------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        missing_ok: bool = False,
        conflict_ok: bool = False,
        zone: str | None = None,
    ) -> httpx.Response:
        with self._count_lock:
            self.requests[method] += 1
        try:
            response = self._client.request(method, path, json=json)
        except httpx.TimeoutException as exc:
            raise _transient(f"PowerDNS API at {self.url}: {what} timed out") from exc
        except httpx.HTTPError as exc:
            raise _transient(f"PowerDNS API at {self.url} unreachable: {what}: {self._clean(str(exc))}") from exc
        status = response.status_code
        if status < 300 or (missing_ok and status == 404) or (conflict_ok and status == 409):
            return response
        detail = self._server_error(response)
        if status in (401, 403):
            raise UnauthorizedError(
                f"PowerDNS API key rejected (HTTP {status}) by {self.url} while trying to {what}; "
                "check RECONCILER_POWERDNS_API_KEY against the server's api-key"
            )
        if status >= 500:
            raise _transient(f"PowerDNS API at {self.url}: {what} failed with HTTP {status}: {detail}")
        if status == 422:
            match = _REJECTED_RE.search(detail)
            name = (match["name"] or match["rname"]) if match else None
            type_ = (match["type"] or match["rtype"]) if match else None
            subject = f"rrset {normalise_name(name)} {type_}" if name and type_ else "a change"
            raise RejectedError(
                f"PowerDNS rejected {subject} ({what}): {detail}",
                zone=zone or "",
                name=normalise_name(name) if name else None,
                type_=type_,
                content=match["content"] if match else None,
            )
        if status == 404 and zone is not None:
            raise ZoneError(f"PowerDNS: zone {zone} does not exist ({what})", zone=zone)
        raise _permanent(f"PowerDNS API: {what} failed with HTTP {status}: {detail}")

    def _server_error(self, response: httpx.Response) -> str:
        try:
            data = response.json()
            text = str(data.get("error", "")) if isinstance(data, dict) else ""
        except ValueError:
            text = ""
        return self._clean(text or response.text.strip() or response.reason_phrase)

    def _clean(self, text: str) -> str:
        """Whatever a server or library echoes, the key is never passed on."""
        return text.replace(self._secret, "***") if self._secret else text

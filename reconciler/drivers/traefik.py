"""Traefik driver: the file provider's directory (write, delete, list our files) and the read-only API.

Thin: it knows file names, atomic writes and HTTP, nothing about tenants' specs. A file is written through a
temporary file in the same directory and ``os.replace``, so Traefik's watcher never reads half a file, and only
when its content differs. Files are ours when their name has our prefix and their first line carries our owner
mark; other files in the directory are never touched. API reads keep only the file provider's objects and
return them as the core's ``RouteTable``. Errors become ``TransientError`` or ``PermanentError``.
Called by the runtime's routing stage (``runtime.passes.routing``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx

from reconciler.core.errors import PermanentError, TransientError
from reconciler.core.routes import FILE_PROVIDER, RouteTable, parse_file_header

# Seconds for one API request; the API answers in milliseconds when Traefik is healthy.
API_TIMEOUT = 5.0
# Traefik pages its lists (100 items by default); a large page keeps a read at one request per section.
PAGE_SIZE = 1000
_SECTIONS = ("routers", "services", "middlewares")
# A tenant name as the specs allow it: a name is joined to the directory only when it matches (no "/", no "..").
_TENANT_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# File system errors that will not go away by retrying.
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}


def _transient(message: str, **fields: Any) -> TransientError:
    return TransientError(message, system="traefik", **fields)


def _permanent(message: str, **fields: Any) -> PermanentError:
    return PermanentError(message, system="traefik", **fields)


def _file_error(exc: OSError, what: str, tenant: str | None) -> Exception:
    if exc.errno in _PERMANENT_ERRNOS:
        return _permanent(f"{what}: {exc}", tenant=tenant)
    return _transient(f"{what}: {exc}", tenant=tenant)


class TraefikDriver:
    def __init__(
        self,
        dynamic_dir: str | os.PathLike[str],
        api_url: str,
        *,
        prefix: str,
        owner: str,
        timeout: float = API_TIMEOUT,
    ) -> None:
        self.dir = Path(dynamic_dir)
        self.api_url = api_url.rstrip("/")
        self.prefix = prefix
        self.owner = owner
        self.http = httpx.Client(timeout=timeout, trust_env=False)
        self.api_reads = 0
        self.writes = 0

    def close(self) -> None:
        self.http.close()

    # --- files ---------------------------------------------------------------------------------------------

    def path(self, tenant: str) -> Path:
        """The tenant's file, confined to the directory: a bad name or a symbolic link out is refused."""
        if not _TENANT_RE.match(tenant):
            shown = tenant if len(tenant) <= 60 else tenant[:57] + "..."
            raise _permanent(f"tenant {shown!r}: not a valid tenant name, no Traefik file for it", tenant=None)
        path = self.dir / f"{self.prefix}-{tenant}.yml"
        if path.is_symlink() or path.resolve().parent != self.dir.resolve():
            raise _permanent(
                f"{path} is a symbolic link or resolves outside {self.dir}; left alone, nothing read or written",
                tenant=tenant,
            )
        return path

    def read(self, tenant: str) -> str | None:
        try:
            return self.path(tenant).read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _file_error(exc, f"read {self.path(tenant)}", tenant) from exc

    def write(self, tenant: str, content: str) -> bool:
        """Replace the tenant's file with ``content`` atomically; False (nothing written) if already equal."""
        target = self.path(tenant)
        if self.read(tenant) == content:
            return False
        temp: str | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # A dot-name outside the provider's *.yml pattern, in the same directory so the rename is atomic.
            fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.dir)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, target)
            temp = None
        except OSError as exc:
            raise _file_error(exc, f"write {target}", tenant) from exc
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
        self.writes += 1
        return True

    def delete(self, tenant: str) -> bool:
        """Remove the tenant's file if it is ours; False if there was none."""
        target = self.path(tenant)
        content = self.read(tenant)
        if content is None:
            return False
        header = parse_file_header(content)
        if header is not None and header[0] != self.owner:
            raise _permanent(f"{target} belongs to owner {header[0]!r}, not {self.owner!r}; left alone", tenant=tenant)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _file_error(exc, f"delete {target}", tenant) from exc
        self.writes += 1
        return True

    def files(self) -> dict[str, str]:
        """Text of every file with our name prefix, by tenant (from the file name), ours or not."""
        head, tail = f"{self.prefix}-", ".yml"
        found: dict[str, str] = {}
        try:
            entries = sorted(self.dir.glob(f"{head}*{tail}"))
        except OSError as exc:
            raise _file_error(exc, f"list {self.dir}", None) from exc
        for entry in entries:
            tenant = entry.name[len(head) : -len(tail)]
            if not tenant or not entry.is_file():
                continue
            try:
                found[tenant] = entry.read_text()
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                found[tenant] = f"# unreadable: {exc}\n"
        return found

    def tenants(self) -> frozenset[str]:
        """Tenants that have a file of ours: name with our prefix and our owner mark on the first line."""
        found: set[str] = set()
        try:
            entries = list(self.dir.glob(f"{self.prefix}-*.yml"))
        except OSError as exc:
            raise _file_error(exc, f"list {self.dir}", None) from exc
        for entry in entries:
            if entry.is_symlink():
                continue  # never ours (we write regular files), and reading it could read outside the directory
            try:
                with entry.open() as handle:
                    header = parse_file_header(handle.readline())
            except OSError:
                continue
            if header is not None and header[0] == self.owner and entry.name == f"{self.prefix}-{header[1]}.yml":
                found.add(header[1])
        return frozenset(found)

    # --- API -------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, int] | None = None) -> httpx.Response:
        url = f"{self.api_url}{path}"
        try:
            response = self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise _transient(f"Traefik API {url} not reachable: {exc}") from exc
        if response.status_code >= 500:
            raise _transient(f"Traefik API {url} answered {response.status_code}")
        if response.status_code != 200:
            raise _permanent(
                f"Traefik API {url} answered {response.status_code}; is `api` enabled on the configured entrypoint?"
            )
        return response

    def _list(self, section: str) -> list[Any]:
        path = f"/api/http/{section}"
        items: list[Any] = []
        page = 1
        while True:
            response = self._get(path, {"page": page, "per_page": PAGE_SIZE})
            try:
                batch = response.json()
            except ValueError as exc:
                raise _transient(f"Traefik API {path} returned invalid JSON: {exc}") from exc
            if not isinstance(batch, list):
                raise _transient(f"Traefik API {path} did not return a list")
            items.extend(batch)
            # Traefik names the next page in X-Next-Page; on the last page it repeats 1.
            following = int(response.headers.get("X-Next-Page", "1") or 1)
            if following <= page:
                return items
            page = following

    def observe(self) -> RouteTable:
        """One read of routers, services (with per-server status) and middlewares of the file provider."""
        self.api_reads += 1
        http: dict[str, dict[str, Any]] = {}
        for section in _SECTIONS:
            items = self._list(section)
            http[section] = {
                str(item["name"]): item
                for item in items
                if isinstance(item, dict) and item.get("provider") == FILE_PROVIDER and "name" in item
            }
        return RouteTable.from_dynamic(http)

    def ping(self) -> None:
        self._get("/api/overview")

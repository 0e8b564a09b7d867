"""Site specs: one ``sites`` row → a validated, frozen ``SiteSpec`` (forward, redirect, static or wordpress), or a
``SiteError``.

First stage of the sites pipeline (docs/sites.md): ``desired_state.site_load`` reads the rows and calls
``build_site`` per row; the YAML import calls it for every site of a file. Every value that reaches the Nginx
configuration is checked against a strict pattern here (hosts, paths, URLs, cookie names, sizes), so no row can
inject a directive into the file the renderer (``renderers.nginx``) writes. An error names the site, the field and
the shortened bad value, like a tenant's ``SpecError``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

from desired_state.bounds import MAX_CPUS, MAX_HOST, MAX_URL_PATH, MiB
from desired_state.inputs import FrozenModel, check_dns_name
from desired_state.sizes import parse_memory
from desired_state.specs import shorten

SITE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# Stricter than a tenant route's path: nothing Nginx would read as syntax (; { } $ quotes, spaces, backslash).
SITE_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
URL_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~%-]*)*$")
COOKIE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SIZE_RE = re.compile(r"^[1-9][0-9]{0,5}[kmg]$")
VOLUME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
KINDS = ("forward", "redirect", "static", "wordpress")
REDIRECT_CODES = (301, 302, 303, 307, 308)
MAX_TIMEOUT = 3600
MAX_TTL = 31_536_000  # a year
MAX_LIST = 100
DEFAULT_CACHE_STATUSES = (200, 301, 302)
# WordPress's login and comment cookies: a logged-in visitor must never be served a cached page.
WORDPRESS_COOKIES = ("wordpress_logged_in_", "wp-postpass_", "comment_author_")

# A WordPress site's containers (PHP-FPM, MariaDB): each gets these limits; bounded like a tenant service's.
WORDPRESS_MIN_MEMORY = 64 * MiB
WORDPRESS_MAX_MEMORY = 16 * 1024 * MiB
MAX_TITLE = 200

SiteKind = Literal["forward", "redirect", "static", "wordpress"]


class SiteError(ValueError):
    """A site's row is invalid; names the site, the field and the shortened value (sites hold no secrets yet)."""

    def __init__(self, site: str, field: str, value: object, message: str) -> None:
        self.site = site
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"site {shorten(repr(site))}: {field} = {self.shown}: {message}")

    @property
    def shown(self) -> str:
        return shorten(repr(self.value))


class CacheSpec(FrozenModel):
    size: str = "10m"  # Nginx size of the cache on disk: 10m, 1g
    ttl: int = 60  # seconds a cached response is served
    statuses: tuple[int, ...] = DEFAULT_CACHE_STATUSES
    bypass_cookies: tuple[str, ...] = WORDPRESS_COOKIES


class ForwardSpec(FrozenModel):
    upstream: str  # http(s)://host[:port][/path]
    connect_timeout: int = 5
    read_timeout: int = 60
    host_header: str = "preserve"  # preserve | upstream | a DNS name
    cache: CacheSpec | None = None


class RedirectSpec(FrozenModel):
    target: str
    code: int = 301
    keep_path: bool = False  # append the request's path and query to the target


class StaticSpec(FrozenModel):
    volume: str  # a directory under RECONCILER_NGINX_STATIC_ROOT
    max_age: int = 3600  # Cache-Control max-age and Expires, seconds


class WordpressSpec(FrozenModel):
    title: str = "WordPress"  # the site title the installation page is offered (the admin may change it there)
    memory: int = 256 * MiB  # bytes, for each of the FPM and MariaDB containers
    cpus: float = 1.0


class SiteSpec(FrozenModel):
    name: str
    kind: SiteKind
    host: str
    path: str | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    forward: ForwardSpec | None = None
    redirect: RedirectSpec | None = None
    static: StaticSpec | None = None
    wordpress: WordpressSpec | None = None


class _Fields:
    """Reads one row's fields, raising ``SiteError`` with the field's dotted name."""

    def __init__(self, site: str, prefix: str, raw: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        self.site, self.prefix, self.raw = site, prefix, raw
        unknown = sorted(str(k) for k in raw if k not in allowed)
        if unknown:
            self.fail(unknown[0], raw[unknown[0]], f"unknown field; expected one of {', '.join(allowed)}")

    def fail(self, key: str, value: object, message: str) -> NoReturn:
        raise SiteError(self.site, f"{self.prefix}{key}", value, message)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, value, f"must be a whole number from {low} to {high}")
        return int(value)

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self.fail(key, value, "is required")
            return None
        if not isinstance(value, str):
            self.fail(key, value, "must be text")
        return str(value).strip()

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) > MAX_LIST or not all(isinstance(v, str) for v in value):
            self.fail(key, value, f"must be a list of at most {MAX_LIST} strings")
        return tuple(str(v).strip() for v in value)


def _networks(fields: _Fields, key: str) -> tuple[str, ...]:
    result: list[str] = []
    for item in fields.strings(key) or ():
        try:
            result.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            fields.fail(key, item, "must list addresses or CIDR ranges such as 10.0.0.0/8 or 2001:db8::/32")
    return tuple(sorted(set(result)))


def _url(fields: _Fields, key: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = fields.text(key, required=True) or ""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        parts = None
    hostname = parts.hostname if parts is not None else None
    ok = (
        parts is not None
        and parts.scheme in schemes
        and hostname is not None
        and not parts.username
        and not parts.password
        and not parts.fragment
        and len(value) <= MAX_HOST + MAX_URL_PATH
        and URL_PATH_RE.match(parts.path or "") is not None
        and re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", parts.netloc) is not None
        and (not parts.query or re.fullmatch(r"[A-Za-z0-9._~%=&-]*", parts.query) is not None)
    )
    if ok and hostname is not None and not _is_ip(hostname):
        try:
            check_dns_name(hostname)
        except ValueError:
            ok = False
    if not ok:
        fields.fail(
            key,
            value,
            f"must be an URL such as {schemes[0]}://upstream.example:8080/app (scheme {' or '.join(schemes)}, "
            "a host, an optional port and path of letters, digits and -._~%; no user, quotes, spaces or $)",
        )
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cache(site: str, raw: object) -> CacheSpec | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SiteError(site, "forward.cache", raw, "must be a mapping (size, ttl, statuses, bypass_cookies) or true")
    fields = _Fields(site, "forward.cache.", raw, ("size", "ttl", "statuses", "bypass_cookies"))
    size = fields.text("size") or "10m"
    if not SIZE_RE.match(size.lower()):
        fields.fail("size", size, "must be a size such as 10m or 1g (k, m or g)")
    statuses = raw.get("statuses", list(DEFAULT_CACHE_STATUSES))
    if (
        not isinstance(statuses, list | tuple)
        or not statuses
        or len(statuses) > 20
        or not all(isinstance(s, int) and not isinstance(s, bool) and 200 <= s <= 599 for s in statuses)
    ):
        fields.fail("statuses", statuses, "must be a list of HTTP status codes from 200 to 599, such as [200, 301]")
    cookies = fields.strings("bypass_cookies")
    for cookie in cookies or ():
        if not COOKIE_RE.match(cookie):
            fields.fail("bypass_cookies", cookie, "must list cookie names (or prefixes) of letters, digits, _ and -")
    return CacheSpec(
        size=size.lower(),
        ttl=fields.integer("ttl", 60, 1, MAX_TTL),
        statuses=tuple(sorted(set(statuses))),
        bypass_cookies=WORDPRESS_COOKIES if cookies is None else tuple(sorted(set(cookies))),
    )


def _forward(site: str, raw: Mapping[str, Any]) -> ForwardSpec:
    fields = _Fields(site, "forward.", raw, ("upstream", "connect_timeout", "read_timeout", "host_header", "cache"))
    host_header = fields.text("host_header") or "preserve"
    if host_header not in ("preserve", "upstream"):
        try:
            host_header = check_dns_name(host_header)
        except ValueError:
            fields.fail("host_header", host_header, "must be preserve, upstream or a DNS name such as www.example.com")
    return ForwardSpec(
        upstream=_url(fields, "upstream"),
        connect_timeout=fields.integer("connect_timeout", 5, 1, MAX_TIMEOUT),
        read_timeout=fields.integer("read_timeout", 60, 1, MAX_TIMEOUT),
        host_header=host_header,
        cache=_cache(site, raw.get("cache")),
    )


def _redirect(site: str, raw: Mapping[str, Any]) -> RedirectSpec:
    fields = _Fields(site, "redirect.", raw, ("target", "code", "keep_path"))
    code = raw.get("code", 301)
    if code not in REDIRECT_CODES or isinstance(code, bool):
        fields.fail("code", code, f"must be one of {', '.join(map(str, REDIRECT_CODES))}")
    keep = raw.get("keep_path", False)
    if not isinstance(keep, bool):
        fields.fail("keep_path", keep, "must be true or false")
    return RedirectSpec(target=_url(fields, "target"), code=int(code), keep_path=bool(keep))


def _static(site: str, raw: Mapping[str, Any]) -> StaticSpec:
    fields = _Fields(site, "static.", raw, ("volume", "max_age"))
    volume = fields.text("volume", required=True) or ""
    if not VOLUME_RE.match(volume) or ".." in volume:
        fields.fail("volume", volume, "must be a volume name of lowercase letters, digits, _ . - (no ..)")
    return StaticSpec(volume=volume, max_age=fields.integer("max_age", 3600, 0, MAX_TTL))


def _wordpress(site: str, raw: Mapping[str, Any]) -> WordpressSpec:
    fields = _Fields(site, "wordpress.", raw, ("title", "memory", "cpus"))
    title = fields.text("title") or "WordPress"
    if len(title) > MAX_TITLE or not title.isprintable():
        fields.fail("title", title, f"must be printable text of at most {MAX_TITLE} characters")
    memory = raw.get("memory", 256 * MiB)
    try:
        size = parse_memory(memory)
    except ValueError as exc:
        fields.fail("memory", memory, str(exc))
    if not WORDPRESS_MIN_MEMORY <= size <= WORDPRESS_MAX_MEMORY:
        fields.fail("memory", memory, "must be from 64M to 16G")
    cpus = raw.get("cpus", 1.0)
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0.1 <= float(cpus) <= MAX_CPUS:
        fields.fail("cpus", cpus, f"must be a number of CPUs from 0.1 to {MAX_CPUS:g}")
    return WordpressSpec(title=title, memory=size, cpus=float(cpus))


def _host(fields: _Fields) -> str:
    host = fields.text("host", required=True) or ""
    try:
        return check_dns_name(host)
    except ValueError as exc:
        fields.fail("host", host, str(exc))


def _path(fields: _Fields) -> str | None:
    path = fields.text("path")
    if path is None or path.rstrip("/") == "":
        return None
    path = path.rstrip("/")
    if len(path) > MAX_URL_PATH or not SITE_PATH_RE.match(path) or {".", ".."} & set(path.split("/")):
        fields.fail("path", path, "must be an URL path prefix such as /blog (letters, digits and -._~ only)")
    return path


SITE_FIELDS = ("name", "kind", "host", "path", "allow", "deny", "options")


def build_site(raw: Mapping[str, Any]) -> SiteSpec:
    """A validated spec from one row: ``name``, ``kind``, ``host``, ``path``, ``allow``, ``deny`` and ``options``
    (the kind's own fields: docs/schema.md). Raises ``SiteError``."""
    name = raw.get("name")
    if not isinstance(name, str) or not SITE_NAME_RE.match(name):
        raise SiteError(str(name), "name", name, "must be 2-40 lowercase letters, digits or -, starting with a letter")
    fields = _Fields(name, "", raw, SITE_FIELDS)
    kind = fields.text("kind", required=True)
    if kind not in KINDS:
        fields.fail("kind", kind, f"must be one of {', '.join(KINDS)}")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping):
        fields.fail("options", options, f"must be a mapping of the {kind} site's fields")
    builders = {"forward": _forward, "redirect": _redirect, "static": _static, "wordpress": _wordpress}
    path = _path(fields)
    if kind == "wordpress" and path is not None:
        fields.fail("path", path, "a wordpress site serves its whole host (no path)")
    return SiteSpec(
        name=name,
        kind=kind,  # checked against KINDS above
        host=_host(fields),
        path=path,
        allow=_networks(fields, "allow"),
        deny=_networks(fields, "deny"),
        **{str(kind): builders[str(kind)](name, options)},
    )

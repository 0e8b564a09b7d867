"""Nginx configuration from site specs (pure): one file per site, and the main file that includes them.

Called by the sites planner (``reconciler.planning.sites``), which compares the rendered ``SiteFile`` with the
file the driver observed, and by the driver's start-up for the main file. Every value written here was checked
against a strict pattern by ``desired_state.site_specs``, so a row cannot add a directive. The output is stable
(sorted lists, fixed order), so a converged site renders to the same bytes and costs no write.

Allow and deny lists (the same meaning as a tenant route's lists: docs/schema.md): an address in the deny list
gets 403; with an allow list, so does every address outside it. Both are ``geo`` maps checked at the start of the
server block, before any location (so a redirect cannot skip them).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from desired_state.site_specs import CacheSpec, ForwardSpec, RedirectSpec, SiteSpec, StaticSpec
from reconciler.core.sites import SiteFile, site_file_name, site_header

# Where the FPM image (deploy/images/wordpress) keeps WordPress and the router for everything that is not PHP.
WORDPRESS_ROOT = "/usr/share/wordpress"
WORDPRESS_STATIC = "/usr/local/share/wp-static/static.php"
WORDPRESS_MAX_BODY = "32m"  # uploads; the image's PHP accepts the same

# Response header naming the cache's verdict (HIT, MISS, BYPASS, EXPIRED ...): operators and tests read it.
CACHE_STATUS_HEADER = "X-Cache-Status"


@dataclass(frozen=True)
class NginxLayout:
    """Where the reconciler's Nginx listens and keeps its files (``RECONCILER_NGINX_*``, docs/sites.md)."""

    listen: str = "127.0.0.1:8088"
    prefix: str = "erp"  # file names: <prefix>-site-<name>.conf
    owner: str = "tenant-reconciler"
    state_dir: str = "/var/lib/tenant-reconciler/nginx"
    static_root: str = "/srv/sites"
    user: str | None = None  # the worker processes' user when Nginx starts as root; None: Nginx's default

    @property
    def sites_dir(self) -> str:
        return f"{self.state_dir}/sites"

    @property
    def cache_dir(self) -> str:
        return f"{self.state_dir}/cache"


def _zone(site: str) -> str:
    return "site_" + site.replace("-", "_")


def _access_http(spec: SiteSpec) -> list[str]:
    """``geo`` maps of the client address: one for the deny list, one for the allow list."""
    zone = _zone(spec.name)
    lines: list[str] = []
    if spec.deny:
        lines += [f"geo ${zone}_denied {{", "    default 0;", *(f"    {cidr} 1;" for cidr in spec.deny), "}"]
    if spec.allow:
        lines += [f"geo ${zone}_allowed {{", "    default 0;", *(f"    {cidr} 1;" for cidr in spec.allow), "}"]
    return lines


def _access(spec: SiteSpec) -> list[str]:
    # Checked in the server's rewrite phase, so a redirect's ``return`` (which runs before Nginx's access phase,
    # where ``allow``/``deny`` would be) is refused too. A denied address is refused even inside the allow list.
    zone = _zone(spec.name)
    lines = [f"if (${zone}_denied) {{", "    return 403;", "}"] if spec.deny else []
    if spec.allow:
        lines += [f"if (${zone}_allowed = 0) {{", "    return 403;", "}"]
    return lines


def _cache_http(spec: SiteSpec, cache: CacheSpec, layout: NginxLayout) -> list[str]:
    zone = _zone(spec.name)
    lines = [
        f"proxy_cache_path {layout.cache_dir}/{spec.name} levels=1:2 keys_zone={zone}:1m "
        f"max_size={cache.size} inactive={max(cache.ttl, 60)}s use_temp_path=off;",
    ]
    if cache.bypass_cookies:
        pattern = "|".join(cache.bypass_cookies)
        lines += [f"map $http_cookie ${zone}_bypass {{", "    default 0;", f'    "~({pattern})" 1;', "}"]
    return lines


def _host_header(forward: ForwardSpec) -> str:
    if forward.host_header == "preserve":
        return "$host"
    if forward.host_header == "upstream":
        return "$proxy_host"
    return forward.host_header


def _forward(spec: SiteSpec, forward: ForwardSpec) -> list[str]:
    parts = urlsplit(forward.upstream)
    # Without a path the request's URI goes upstream as it came; with one, the site's path prefix is replaced by
    # it (/news/a with upstream .../wp → /wp/a), so it must end in a slash like the location does.
    upstream = forward.upstream if not parts.path else forward.upstream.rstrip("/") + "/"
    lines = [
        f"proxy_pass {upstream};",
        f"proxy_set_header Host {_host_header(forward)};",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        f"proxy_connect_timeout {forward.connect_timeout}s;",
        f"proxy_read_timeout {forward.read_timeout}s;",
        f"proxy_send_timeout {forward.read_timeout}s;",
    ]
    if parts.scheme == "https":
        lines.append("proxy_ssl_server_name on;")
    cache = forward.cache
    if cache is not None:
        zone = _zone(spec.name)
        lines += [
            f"proxy_cache {zone};",
            f"proxy_cache_valid {' '.join(map(str, cache.statuses))} {cache.ttl}s;",
            "proxy_cache_lock on;",
            "proxy_cache_use_stale error timeout updating;",
            f"add_header {CACHE_STATUS_HEADER} $upstream_cache_status always;",
        ]
        if cache.bypass_cookies:
            lines += [f"proxy_cache_bypass ${zone}_bypass;", f"proxy_no_cache ${zone}_bypass;"]
    return lines


def _redirect(redirect: RedirectSpec) -> list[str]:
    target = redirect.target.rstrip("/") + "$request_uri" if redirect.keep_path else redirect.target
    return [f"return {redirect.code} {target};"]


def _static(spec: SiteSpec, static: StaticSpec, layout: NginxLayout) -> list[str]:
    root = f"{layout.static_root}/{static.volume}"
    # The site's path prefix is not part of the volume's layout: /docs/a.txt serves <volume>/a.txt. Missing files
    # are 404 and directories serve their index.html (Nginx's static module; no try_files, which mishandles alias).
    where = f"alias {root}/;" if spec.path else f"root {root};"
    # ``expires`` sends both Expires and Cache-Control: max-age (one header each).
    return [where, f"expires {static.max_age}s;"]


def _fpm_address(spec: SiteSpec, fpm: str | None) -> str:
    host, _, port = (fpm or "").rpartition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"site {spec.name!r}: the PHP-FPM container has no address yet") from None
    if not port.isdigit():
        raise ValueError(f"site {spec.name!r}: the PHP-FPM container's address {fpm!r} has no port")
    return f"{host}:{port}"


def _fastcgi(address: str, script: str) -> list[str]:
    return [
        f"fastcgi_pass {address};",
        "include /etc/nginx/fastcgi_params;",
        f"fastcgi_param SCRIPT_FILENAME {script};",
        "fastcgi_read_timeout 300s;",
    ]


def _wordpress(address: str) -> list[str]:
    """Everything goes to the site's FPM container (Nginx on the host has no WordPress files): PHP scripts and
    directories (``fastcgi_index``: /wp-admin/ runs wp-admin/index.php) under WordPress's root, any other path to
    the image's router, which sends static files and hands pretty permalinks to index.php. PHP under uploads is
    never run."""
    return [
        f"client_max_body_size {WORDPRESS_MAX_BODY};",
        "location ~* ^/wp-content/uploads/.*\\.php$ {",
        "    return 403;",
        "}",
        "location ~ (\\.php|/)$ {",
        "    fastcgi_index index.php;",
        *(f"    {line}" for line in _fastcgi(address, f"{WORDPRESS_ROOT}$fastcgi_script_name")),
        "}",
        "location / {",
        *(f"    {line}" for line in _fastcgi(address, WORDPRESS_STATIC)),
        "}",
    ]


def _location_body(spec: SiteSpec, layout: NginxLayout) -> list[str]:
    if spec.forward is not None:
        return _forward(spec, spec.forward)
    if spec.redirect is not None:
        return _redirect(spec.redirect)
    if spec.static is not None:
        return _static(spec, spec.static, layout)
    raise ValueError(f"site {spec.name!r}: kind {spec.kind!r} has no options")


def render_site(spec: SiteSpec, layout: NginxLayout, fpm: str | None = None) -> SiteFile:
    """The site's file, header included: one server block for its host, one location for its path (a wordpress
    site: its locations, all to ``fpm``, the ip:port of its FPM container; ValueError without one)."""
    http_level = _access_http(spec)
    if spec.forward is not None and spec.forward.cache is not None:
        http_level += _cache_http(spec, spec.forward.cache, layout)
    location = f"{spec.path}/" if spec.path else "/"
    if spec.wordpress is not None:
        locations = _wordpress(_fpm_address(spec, fpm))
    else:
        locations = [f"location {location} {{", *(f"    {line}" for line in _location_body(spec, layout)), "}"]
    body_lines = [
        *http_level,
        "server {",
        f"    listen {layout.listen};",
        f"    server_name {spec.host};",
        *(f"    {line}" for line in _access(spec)),
        *(f"    {line}" for line in locations),
    ]
    if spec.path:
        # /blog without the slash goes where /blog/ does; other paths of the host are not this site's.
        body_lines += [f"    location = {spec.path} {{", f"        return 301 {spec.path}/;", "    }"]
        body_lines += ["    location / {", "        return 404;", "    }"]
    body_lines.append("}")
    body = "\n".join(body_lines) + "\n"
    file = site_file_name(layout.prefix, spec.name)
    return SiteFile.from_text(spec.name, file, site_header(layout.owner, spec.name, body) + body)


def render_main(layout: NginxLayout, sites_dir: str | None = None) -> str:
    """The main configuration the reconciler's Nginx runs with (``nginx -p <state_dir> -c nginx.conf``).

    ``sites_dir``: the directory whose files it includes (default the live one; the driver validates a staged
    copy of it with ``nginx -t``)."""
    state = layout.state_dir
    user = [f"user {layout.user};"] if layout.user else []
    lines = [
        f"# tenant-reconciler owner={layout.owner} main configuration; written by the reconciler",
        *user,
        "worker_processes 1;",
        f"pid {state}/nginx.pid;",
        f"error_log {state}/logs/error.log warn;",
        "events {",
        "    worker_connections 1024;",
        "}",
        "http {",
        "    include /etc/nginx/mime.types;",
        "    default_type application/octet-stream;",
        f"    access_log {state}/logs/access.log;",
        f"    client_body_temp_path {state}/tmp/body;",
        f"    proxy_temp_path {state}/tmp/proxy;",
        f"    fastcgi_temp_path {state}/tmp/fastcgi;",
        f"    uwsgi_temp_path {state}/tmp/uwsgi;",
        f"    scgi_temp_path {state}/tmp/scgi;",
        "    server_tokens off;",
        "    # A host no site claims gets 404, never another site's content.",
        "    server {",
        f"        listen {layout.listen} default_server;",
        "        return 404;",
        "    }",
        f"    include {sites_dir or layout.sites_dir}/*.conf;",
        "}",
    ]
    return "\n".join(lines) + "\n"

"""Site rows → specs (``desired_state.site_specs``, ``site_load.sites_from_rows``): what is accepted, and that
any hostile row gets an error naming the site, the field and a shortened value, never a config injection."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desired_state.bounds import MAX_SHOWN_VALUE
from desired_state.site_load import sites_from_rows
from desired_state.site_specs import SiteError, build_site
from renderers.nginx import NginxLayout, render_site

SAFE = re.compile(r"[A-Za-z0-9._~%:/\[\]-]*")

FORWARD = {"name": "shop", "kind": "forward", "host": "shop.example.test", "options": {"upstream": "http://10.0.0.5"}}


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {**FORWARD, "options": dict(FORWARD["options"])}
    row.update(changes)
    return row


def test_a_forward_gets_defaults_and_normalised_lists() -> None:
    spec = build_site(_row(path="/shop/", allow=["10.0.0.0/8", "10.0.0.1/8"], deny=["127.0.0.2"]))
    assert spec.path == "/shop"
    assert spec.allow == ("10.0.0.0/8",) and spec.deny == ("127.0.0.2/32",)
    assert spec.forward is not None and spec.forward.host_header == "preserve" and spec.forward.cache is None
    cached = build_site(_row(options={"upstream": "https://up.example.test:8443/app", "cache": True}))
    assert cached.forward is not None and cached.forward.cache is not None
    assert "wordpress_logged_in_" in cached.forward.cache.bypass_cookies


def test_a_wordpress_row_builds_with_bounded_limits() -> None:
    spec = build_site(_row(kind="wordpress", options={"title": "Company news", "memory": "512m", "cpus": 0.5}))
    assert spec.wordpress is not None and spec.forward is None
    assert (spec.wordpress.title, spec.wordpress.memory, spec.wordpress.cpus) == ("Company news", 512 * 1024**2, 0.5)
    assert build_site(_row(kind="wordpress", options={})).wordpress is not None  # defaults: 256M, 1 CPU


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"host": "bad host"}, "host", "DNS name"),
        ({"kind": "wordpress", "options": {"memory": "1g", "cpus": 0}}, "wordpress.cpus", "0.1 to 64"),
        ({"kind": "wordpress", "options": {"memory": "32m"}}, "wordpress.memory", "64M to 16G"),
        ({"kind": "wordpress", "options": {"title": "a\nb"}}, "wordpress.title", "printable"),
        ({"kind": "wordpress", "path": "/blog", "options": {}}, "path", "whole host"),
        ({"kind": "ftp"}, "kind", "forward, redirect, static"),
        ({"path": "/a;b"}, "path", "URL path prefix"),
        ({"allow": ["10.0.0.0/33"]}, "allow", "CIDR"),
        ({"options": {"upstream": "http://x.example.test/$host"}}, "forward.upstream", "URL"),
        ({"options": {"upstream": "ftp://x.example.test"}}, "forward.upstream", "URL"),
        ({"options": {"upstream": "http://u:p@x.example.test"}}, "forward.upstream", "URL"),
        ({"options": {"upstream": "http://10.0.0.5", "read_timeout": 0}}, "forward.read_timeout", "1 to 3600"),
        ({"options": {"upstream": "http://10.0.0.5", "host_header": "a b"}}, "forward.host_header", "preserve"),
        ({"options": {"upstream": "http://10.0.0.5", "cache": {"size": "10 m"}}}, "forward.cache.size", "size"),
        ({"options": {"upstream": "http://10.0.0.5", "cache": {"statuses": [99]}}}, "forward.cache.statuses", "200"),
        (
            {"options": {"upstream": "http://10.0.0.5", "cache": {"bypass_cookies": ["a|b"]}}},
            "forward.cache.bypass_cookies",
            "cookie",
        ),
        ({"options": {"upstream": "http://10.0.0.5", "surprise": 1}}, "forward.surprise", "unknown field"),
        ({"kind": "redirect", "options": {"target": "https://x.example.test", "code": 200}}, "redirect.code", "301"),
        ({"kind": "static", "options": {"volume": "../etc"}}, "static.volume", "volume name"),
        ({"kind": "static", "options": {}}, "static.volume", "required"),
    ],
)
def test_bad_fields_are_named_with_their_value(changes: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(SiteError) as caught:
        build_site(_row(**changes))
    assert caught.value.site == "shop" and caught.value.field == field
    assert needle in caught.value.message
    assert str(caught.value).startswith(f"site 'shop': {field} = ")


def test_one_bad_row_and_a_host_claimed_twice_are_those_sites_errors_only() -> None:
    rows = [
        {"id": 1, **_row()},
        {"id": 2, **_row(name="again")},  # the same host, newer row
        {"id": 3, **_row(name="broken", options="{not json")},
        {"id": 4, **_row(name="other", host="other.example.test")},
    ]
    desired = sites_from_rows(rows)
    assert sorted(desired.sites) == ["other", "shop"]
    assert desired.errors["again"].field == "host" and "already served by site 'shop'" in str(desired.errors["again"])
    assert desired.errors["broken"].field == "options"


_text = st.text(st.characters(codec="utf-8"), max_size=300)
_hostile = st.one_of(_text, st.integers(), st.none(), st.lists(_text, max_size=3), st.booleans())


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(["host", "path", "upstream", "host_header", "cookie", "allow"]), value=_hostile)
def test_hostile_values_are_rejected_clearly_or_render_without_new_directives(field: str, value: Any) -> None:
    options: dict[str, Any] = {"upstream": "http://10.0.0.5", "cache": {"ttl": 5}}
    row = _row(options=options)
    if field in ("host", "path", "allow"):
        row[field] = value
    elif field == "cookie":
        options["cache"]["bypass_cookies"] = [value]
    else:
        options[field] = value
    try:
        spec = build_site(row)
    except SiteError as exc:
        assert str(exc).startswith("site 'shop': ")
        assert exc.field in (field, f"forward.{field}", "forward.cache.bypass_cookies")
        assert len(exc.shown) <= MAX_SHOWN_VALUE
        return
    forward = spec.forward
    assert forward is not None and forward.cache is not None
    values = [
        spec.host,
        spec.path or "",
        *spec.allow,
        forward.upstream,
        forward.host_header,
        *forward.cache.bypass_cookies,
    ]
    # Nothing Nginx reads as syntax (; { } $ quotes, spaces, backslash, #) survives validation.
    assert all(SAFE.fullmatch(v) for v in values), values
    assert render_site(spec, NginxLayout()).text.count("server {") == 1

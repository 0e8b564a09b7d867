"""The ``sites:`` section of the YAML import and export (``desired_state.yaml_sites``) on PostgreSQL."""

from __future__ import annotations

import pytest

from desired_state.database import make_engine, upgrade
from desired_state.site_load import load_sites
from desired_state.yaml_io import YamlImportError, export_yaml, import_yaml

FILE = """\
sites:
  - name: blog
    kind: forward
    host: blog.example.test
    deny: [203.0.113.0/24]
    forward: {upstream: "http://10.0.0.5:8080", cache: {ttl: 300}}
  - name: old
    kind: redirect
    host: old.example.test
    redirect: {target: "https://new.example.test/", code: 308}
"""


def test_sites_import_export_round_trip_and_errors_name_the_position(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        empty_export = export_yaml(engine)
        assert "sites" not in empty_export  # the tenants' format is unchanged without sites

        summary = import_yaml(engine, FILE, source="sites.yaml")
        assert summary.sites is not None and summary.sites.created == 2
        assert str(summary).endswith("; sites: 2 created, 0 updated, 0 unchanged")
        desired = load_sites(engine)
        assert sorted(desired.sites) == ["blog", "old"] and not desired.errors
        blog = desired.sites["blog"].forward
        assert blog is not None and blog.cache is not None and blog.cache.ttl == 300

        exported = export_yaml(engine)
        again = import_yaml(engine, exported, source="export.yaml")
        assert again.sites is not None and (again.sites.unchanged, again.sites.updated) == (2, 0)
        changed = import_yaml(engine, FILE.replace("code: 308", "code: 302"))
        assert changed.sites is not None and changed.sites.updated == 1
        assert load_sites(engine).generations["old"] == 2

        bad = FILE.replace('"http://10.0.0.5:8080"', '"http://10.0.0.5:8080/$x"').replace(
            "kind: redirect", "kind: static"
        )
        with pytest.raises(YamlImportError) as caught:
            import_yaml(engine, bad, source="bad.yaml")
        problems = caught.value.problems
        assert problems[0].startswith("bad.yaml:6:") and "sites[0] (site 'blog'): forward.upstream = " in problems[0]
        assert "sites[1] (site 'old'): redirect = " in problems[1] and "this site is 'static'" in problems[1]
        assert load_sites(engine).generations["old"] == 2  # nothing written
    finally:
        engine.dispose()

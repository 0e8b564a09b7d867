"""The fast YAML writer of the Traefik files (``renderers.yaml_block``) writes exactly what PyYAML writes, or leaves
the value to PyYAML: compared on the route files of the golden cases, on generated values, and on values it must
refuse."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from renderers import yaml_block

_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def pyyaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=False)


def same_or_refused(data: dict[str, Any]) -> bool:
    fast = yaml_block.dump(data)
    assert fast is None or fast == pyyaml(data), (data, fast, pyyaml(data))
    return fast is not None


ROUTE = {
    "http": {
        "routers": {
            "erp-acme-a": {
                "rule": "Host(`acme.erp.test`) && PathPrefix(`/r`)",
                "entryPoints": ["web"],
                "service": "erp-acme-a",
                "middlewares": ["erp-acme-a-allow", "erp-acme-retry"],
            }
        },
        "services": {
            "erp-acme-a": {"weighted": {"services": [{"name": "erp-acme-a-v0", "weight": 90}], "healthCheck": {}}},
            "erp-acme-a-v0": {
                "loadBalancer": {
                    "servers": [{"url": "http://10.213.0.2:8080"}, {"url": "http://[fd00::2]:8080"}],
                    "healthCheck": {"path": "/health", "interval": "1s", "timeout": "1s"},
                    "passHostHeader": True,
                }
            },
        },
        "middlewares": {
            "erp-acme-a-allow": {"ipAllowList": {"sourceRange": ["10.0.0.0/8", "2001:db8::/32"]}},
            "erp-acme-retry": {"retry": {"attempts": 2}},
        },
        "serversTransports": {"erp-acme": {"forwardingTimeouts": {"dialTimeout": "2s"}}},
    }
}


def test_a_route_file_is_written_fast_and_exactly() -> None:
    assert same_or_refused(ROUTE)


def test_values_pyyaml_would_quote_or_fold_are_left_to_it() -> None:
    quoted = ["true", "12", "1.5", "null", "~", "2026-12-01", "", " x", "x ", "a: b", "a #b", "-x", "*x", "é", "x:"]
    for value in quoted:
        assert not same_or_refused({"k": value}), value
    assert not same_or_refused({"k": "word " * 20})  # a line past 80 columns, which PyYAML folds
    assert not same_or_refused({"k": 1.5}) and not same_or_refused({"k": None}) and not same_or_refused({"k": [[1]]})
    assert not same_or_refused({"k": ({"a": 1},)})


_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
_keys = st.one_of(st.sampled_from(["url", "rule", "http", "a", "weight", "healthCheck"]), _text)
_scalars = st.one_of(_text, st.integers(-5, 10**6), st.booleans(), st.sampled_from(["Host(`a.b`)", "1s", "/x"]))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _values, min_size=1, max_size=4))
def test_generated_values_match_pyyaml(data: dict[str, Any]) -> None:
    same_or_refused(data)

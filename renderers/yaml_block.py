"""Block-style YAML for the Traefik dynamic files, written directly: the same bytes as ``yaml.dump(data,
sort_keys=True, default_flow_style=False, allow_unicode=False)`` for the values those files hold, about twenty times
faster.

Called by ``renderers.traefik.render_file`` once per tenant in every plan (the file's text is compared with the one
on disk to find hand edits), so at 10 000 tenants PyYAML's representer alone took seconds. This writer handles
only what it can write exactly as PyYAML does: mappings with string keys, lists, strings that PyYAML writes plain,
ints and bools, no line beyond PyYAML's width. For anything else ``dump`` returns None and the caller uses PyYAML.
``tests/unit/test_yaml_block.py`` compares the two on generated values.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import yaml

# PyYAML folds a plain scalar at a space once a line passes 80 columns (``best_width``); shorter lines stay whole.
_WIDTH = 80
# A string PyYAML writes plain in block context: printable ASCII, starting with a letter, digit, '/' or '_', no
# ': ' or ' #' inside, no ':' or space at the end. The resolver then decides whether plain would read back as
# something else (true, 12, 1.5, null, a date): those are quoted, so they go to PyYAML.
_PLAIN = re.compile(r"[A-Za-z0-9/_](?:[\x21-\x7e ]*[\x21-\x39\x3b-\x7e])?")
_RESOLVER: Any = yaml.resolver.Resolver()  # untyped in types-PyYAML
_STR_TAG = "tag:yaml.org,2002:str"


@lru_cache(maxsize=65536)  # names, rules and addresses repeat from pass to pass; the resolver's regexes cost
def _plain(text: str) -> bool:
    if _PLAIN.fullmatch(text) is None or ": " in text or " #" in text:
        return False
    return bool(_RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG)


def _scalar(value: Any) -> str | None:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is str and _plain(value):
        return value
    return None


class _Unsupported(Exception):
    pass


def _mapping(data: dict[Any, Any], indent: int, first_prefix: str, out: list[str]) -> None:
    """Keys sorted; ``first_prefix`` opens the first line (a list item's '- '), later keys are indented."""
    prefix = first_prefix
    for key in sorted(data):
        if type(key) is not str or _scalar(key) is None:
            raise _Unsupported
        _entry(f"{prefix}{key}:", data[key], indent, out)
        prefix = " " * indent


def _entry(head: str, value: Any, indent: int, out: list[str]) -> None:
    if type(value) is dict:
        if not value:
            out.append(f"{head} {{}}")
            return
        out.append(head)
        _mapping(value, indent + 2, " " * (indent + 2), out)
    elif type(value) is list:
        if not value:
            out.append(f"{head} []")
            return
        out.append(head)
        _sequence(value, indent, out)  # PyYAML's block sequences in a mapping are not indented
    else:
        text = _scalar(value)
        if text is None:
            raise _Unsupported
        out.append(f"{head} {text}")


def _sequence(items: list[Any], indent: int, out: list[str]) -> None:
    pad = " " * indent
    for item in items:
        if type(item) is dict and item:
            _mapping(item, indent + 2, f"{pad}- ", out)
        elif type(item) in (dict, list):
            raise _Unsupported  # empty mappings and nested lists in a list: left to PyYAML
        else:
            text = _scalar(item)
            if text is None:
                raise _Unsupported
            out.append(f"{pad}- {text}")


def dump(data: dict[str, Any]) -> str | None:
    """``data`` as PyYAML writes it (sorted keys, block style), or None when this writer cannot be sure."""
    if not data:
        return None
    out: list[str] = []
    try:
        _mapping(data, 0, "", out)
    except _Unsupported:
        return None
    if any(len(line) > _WIDTH for line in out):
        return None
    out.append("")
    return "\n".join(out)

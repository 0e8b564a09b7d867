"""The console's words: message catalogs (``messages/<locale>.json``), one per language, none in the templates.

English and Persian; Persian pages are laid out right to left. Each account has its locale (``api_tokens.locale``,
switched from any page). A key missing from a catalog falls back to English, then to the key's last part (a
status no catalog knows is shown as it is), so a new message never breaks a page. Called by ``console.pages``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

MESSAGES = Path(__file__).with_name("messages")
LOCALES = ("en", "fa")
RIGHT_TO_LEFT = frozenset({"fa"})


@cache
def catalog(locale: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((MESSAGES / f"{locale}.json").read_text(encoding="utf-8"))
    return data


def translator(locale: str) -> Callable[..., str]:
    words = catalog(locale if locale in LOCALES else "en")
    english = catalog("en")

    def t(key: str, **values: object) -> str:
        # A value no catalog knows (a status written by something newer) is shown as it is.
        text = words.get(key) or english.get(key) or key.split(".", 1)[-1]
        return text.format(**values) if values else text

    return t


def direction(locale: str) -> str:
    return "rtl" if locale in RIGHT_TO_LEFT else "ltr"

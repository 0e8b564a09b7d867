"""The console's message catalogs: every key a template uses is in English and Persian, both catalogs have the same
keys, and Persian is laid out right to left."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reconciler.api.console.i18n import MESSAGES, direction, translator

TEMPLATES = Path(MESSAGES).with_name("templates")
PAGES = Path(MESSAGES).with_name("pages.py")
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_.]+)["']""")
# Keys built from a value in the templates: prefix + every value the value can take.
BUILT = {
    "phase.": ("Pending", "Ready", "Progressing", "Stopped", "Absent", "Failed", "Degraded", "Invalid"),
    "state.": ("running", "stopped", "absent"),
    "role.": ("viewer", "operator", "admin"),
    "locale.": ("en", "fa"),
    "notice.": ("saved", "backup", "restore", "rollback", "move", "stop", "start", "nudge"),
    "status.": ("pending", "running", "succeeded", "failed", "pruned", "reverted"),
    "outcome.": ("queued", "sent", "failed", "logged", "dropped"),
    "kind.": ("deploy", "upgrade", "migrate", "backup", "restore", "rollback", "move"),
}


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*TEMPLATES.glob("*.html"), PAGES]:
        keys.update(k for k in LITERAL_KEY.findall(path.read_text()) if not k.endswith("."))
    keys.update({"login.failed", "error.csrf"})  # passed to templates by name
    keys.update(prefix + value for prefix, values in BUILT.items() for value in values)
    return keys


def test_every_key_used_is_in_both_catalogs_and_the_catalogs_agree() -> None:
    english = json.loads((MESSAGES / "en.json").read_text())
    persian = json.loads((MESSAGES / "fa.json").read_text())
    assert set(english) == set(persian)
    missing = sorted(_used_keys() - set(english))
    assert missing == []


def test_persian_is_right_to_left_and_fills_values() -> None:
    assert direction("fa") == "rtl" and direction("en") == "ltr"
    assert translator("fa")("edit.service", service="a") == "سرویس a"
    assert translator("en")("error.role", role="viewer").startswith("Your account is a viewer")
    assert translator("xx")("yes") == "yes"  # an unknown locale falls back to English


def test_no_template_holds_words_of_its_own() -> None:
    # Text between tags must come from t(...): a template may hold markup, expressions and punctuation only.
    for path in TEMPLATES.glob("*.html"):
        text = re.sub(
            r"<script>.*?</script>|<style>.*?</style>|\{[{%#].*?[}%#]\}|<[^>]*>", " ", path.read_text(), flags=re.S
        )
        words = [w for w in re.findall(r"[A-Za-z\u0600-\u06FF]{3,}", text)]
        assert words == [], f"{path.name}: {words[:10]}"

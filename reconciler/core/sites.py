"""Site value type: one Nginx site file, desired or observed (pure).

The renderer (``renderers.nginx``) builds a ``SiteFile`` from a site's spec; the Nginx driver builds one from the
file it finds in the sites directory. Both go through ``SiteFile.from_text``, so the planner
(``reconciler.planning.sites``) compares like with like: the text itself. The first line names the owner, the
site and a digest of the rest, so a file edited by hand is told apart from a file whose spec changed, and a file
of another owner is never touched (``core.policies.ownership``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# A site's key where the plan holds a tenant's name (``Change.tenant``); tenant names never contain ":".
SITE_KEY = "site:"

_HEADER_RE = re.compile(
    r"^# tenant-reconciler owner=(?P<owner>[a-z0-9-]+) site=(?P<site>[a-z0-9-]+) digest=(?P<digest>[0-9a-f]{12})\b"
)


def body_digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def site_header(owner: str, site: str, body: str) -> str:
    return (
        f"# tenant-reconciler owner={owner} site={site} digest={body_digest(body)}; "
        "written by the reconciler, hand edits are undone\n"
    )


def site_file_name(prefix: str, site: str) -> str:
    """The file a site is written to; the prefix keeps a shared directory's files of other owners apart."""
    return f"{prefix}-site-{site}.conf"


@dataclass(frozen=True)
class SiteFile:
    """One site's Nginx configuration file. ``owner`` and ``site`` come from its header (None: not ours, or a
    hand edit took the header); ``edited`` is true when the body no longer matches the header's digest."""

    name: str  # the site's name (observed: from the file name)
    file: str
    text: str
    owner: str | None = None
    edited: bool = False

    @staticmethod
    def from_text(name: str, file: str, text: str) -> SiteFile:
        first, _, body = text.partition("\n")
        match = _HEADER_RE.match(first)
        if match is None:
            return SiteFile(name=name, file=file, text=text, owner=None, edited=True)
        edited = match.group("digest") != body_digest(body) or match.group("site") != name
        return SiteFile(name=name, file=file, text=text, owner=match.group("owner"), edited=edited)

    @property
    def body(self) -> str:
        return self.text.partition("\n")[2]

"""The Traefik driver's file side on a real directory, and its API errors against a closed port."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from reconciler.core.errors import PermanentError, TransientError
from reconciler.core.routes import file_header
from reconciler.drivers.traefik import TraefikDriver


def driver(directory: Path, owner: str = "ci") -> TraefikDriver:
    return TraefikDriver(directory, "http://127.0.0.1:9", prefix="erp", owner=owner)


def content(tenant: str, body: str = "http: {}\n", owner: str = "ci") -> str:
    return file_header(owner, tenant) + body


def test_write_is_atomic_and_only_when_changed(tmp_path: Path) -> None:
    files = driver(tmp_path)
    assert files.write("acme", content("acme")) is True
    first = os.stat(files.path("acme"))
    assert files.write("acme", content("acme")) is False
    assert os.stat(files.path("acme")).st_ino == first.st_ino
    assert files.write("acme", content("acme", "http: {routers: {}}\n")) is True
    # Replaced by rename: a new inode, never a partially written file; no temporary file left behind.
    assert os.stat(files.path("acme")).st_ino != first.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erp-acme.yml"]
    assert files.writes == 2


def test_only_our_files_are_listed_and_deleted(tmp_path: Path) -> None:
    files = driver(tmp_path)
    files.write("acme", content("acme"))
    files.write("acme-b", content("acme-b"))
    (tmp_path / "erp-foreign.yml").write_text("http: {}\n")  # no owner mark
    (tmp_path / "other-acme.yml").write_text(content("acme"))  # another prefix
    driver(tmp_path, owner="someone").write("shared", content("shared", owner="someone"))
    (tmp_path / "erp-mislabelled.yml").write_text(content("acme"))  # mark names another tenant
    assert files.tenants() == {"acme", "acme-b"}

    assert files.delete("acme") is True
    assert files.delete("acme") is False
    with pytest.raises(PermanentError, match="belongs to owner 'someone'"):
        files.delete("shared")
    assert (tmp_path / "erp-shared.yml").exists()
    assert files.tenants() == {"acme-b"}


@pytest.mark.parametrize("tenant", ["../escape", "a/b", "/etc/passwd", "", "x" * 300, "Acme"])
def test_a_tenant_name_never_leaves_the_directory(tmp_path: Path, tenant: str) -> None:
    files = driver(tmp_path / "dynamic")
    (tmp_path / "escape.yml").write_text("outside\n")
    for act in (lambda: files.write(tenant, content("acme")), lambda: files.delete(tenant), lambda: files.read(tenant)):
        with pytest.raises(PermanentError, match="not a valid tenant name"):
            act()
    assert (tmp_path / "escape.yml").read_text() == "outside\n"
    assert not (tmp_path / "dynamic").exists() or list((tmp_path / "dynamic").iterdir()) == []


def test_a_symlinked_file_is_neither_followed_nor_deleted(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(content("acme"))
    (tmp_path / "dynamic").mkdir()
    files = driver(tmp_path / "dynamic")
    (tmp_path / "dynamic" / "erp-acme.yml").symlink_to(victim)
    assert files.tenants() == frozenset()
    for act in (lambda: files.write("acme", content("acme", "http: {routers: {}}\n")), lambda: files.delete("acme")):
        with pytest.raises(PermanentError, match="symbolic link"):
            act()
    assert victim.read_text() == content("acme")


def test_unwritable_directory_is_a_permanent_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(PermanentError):
        driver(blocker).write("acme", content("acme"))


def test_unreachable_api_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = TraefikDriver("/nonexistent", f"http://127.0.0.1:{port}", prefix="erp", owner="ci", timeout=1.0)
    with pytest.raises(TransientError, match="not reachable"):
        api.observe()

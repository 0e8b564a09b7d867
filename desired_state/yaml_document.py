"""The YAML document of ``reconciler import``: parsing with positions, and the layout checks the specs cannot do.

First half of ``desired_state.yaml_import.import_yaml`` (the format is in ``desired_state.yaml_io``): the text
becomes plain data plus the file position of every node, so each problem is reported as ``file:line:column``.
No database here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import yaml

TOP_LEVEL_KEYS = ("catalog", "tenants", "sites")  # sites: desired_state.yaml_sites
CATALOG_FIELDS = ("image", "port", "health", "memory", "cpus", "migrate", "public", "checks", "checks_rollback")

# Position in the YAML document as string parts (list indices as "0", "1", ...), the key of the mark index.
DocumentPath = tuple[str, ...]


class YamlImportError(ValueError):
    """The file cannot be imported; nothing was written. Each problem names its position and the fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Document:
    data: Any
    marks: dict[DocumentPath, yaml.Mark]
    source: str

    def where(self, path: DocumentPath) -> str:
        """``source:line:column`` of the deepest node on ``path`` that the file has, else just ``source``."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return f"{self.source}:{mark.line + 1}:{mark.column + 1}"
        return self.source


def parse_document(text: str, source: str) -> Document:
    # One parse gives both the node tree (for positions) and the data; SafeLoader builds plain types only.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlImportError([f"{source}: the document is empty; expected a mapping with catalog and tenants"])
        marks: dict[DocumentPath, yaml.Mark] = {}
        problems: list[str] = []
        _index(node, (), marks, problems, source, set())
        if problems:
            raise YamlImportError(problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = f"{exc.problem} ({exc.context})" if exc.context else str(exc.problem)
        raise YamlImportError([f"{where}: YAML syntax error: {problem}"]) from exc
    except yaml.YAMLError as exc:
        raise YamlImportError([f"{source}: YAML error: {exc}"]) from exc
    finally:
        loader.dispose()
    return Document(data=data, marks=marks, source=source)


def _index(
    node: yaml.Node,
    path: DocumentPath,
    marks: dict[DocumentPath, yaml.Mark],
    problems: list[str],
    source: str,
    seen: set[int],
) -> None:
    """Record the start mark of every node by path; report duplicate keys, which PyYAML silently merges."""
    marks.setdefault(path, node.start_mark)
    if id(node) in seen:
        problems.append(f"{_at(source, node.start_mark)}: recursive alias at {display_path(path)}")
        return
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, str(i)), marks, problems, source, seen | {id(node)})
    elif isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value)
            if key in first:
                problems.append(
                    f"{_at(source, key_node.start_mark)}: duplicate key {key!r} in {display_path(path)} "
                    f"(first at line {first[key].line + 1})"
                )
                continue
            first[key] = key_node.start_mark
            _index(value_node, (*path, key), marks, problems, source, seen | {id(node)})


def _at(source: str, mark: yaml.Mark) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def display_path(path: DocumentPath) -> str:
    """``tenants[1].services.a.replicas`` from ("tenants", "1", "services", "a", "replicas")."""
    if not path:
        return "(document)"
    text = path[0]
    for previous, part in pairwise(path):
        text += f"[{part}]" if previous in ("tenants", "sites") and part.isdigit() else f".{part}"
    return text


def field_path(field: str) -> DocumentPath:
    return () if field == "(tenant)" else tuple(field.split("."))


@dataclass(frozen=True)
class FileContent:
    catalog: dict[str, dict[str, Any]]
    # (index in the file, raw tenant) in file order.
    tenants: list[tuple[int, dict[str, Any]]]


def shape_document(document: Document) -> FileContent:
    """Check the layout the specs cannot (top level, lists vs mappings) and normalise empty values."""
    data, problems = document.data, []

    def problem(path: DocumentPath, message: str) -> None:
        problems.append(f"{document.where(path)}: {display_path(path)}: {message}")

    if not isinstance(data, dict):
        raise YamlImportError([f"{document.where(())}: expected a mapping with the keys catalog and tenants"])
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problem((str(key),), f"unknown top-level key; expected {', '.join(TOP_LEVEL_KEYS)}")

    catalog: dict[str, dict[str, Any]] = {}
    raw_catalog = data.get("catalog") or {}
    if not isinstance(raw_catalog, dict):
        problem(("catalog",), "must be a mapping of service name to fields, e.g. a: {image: erp/demo-svc:1}")
        raw_catalog = {}
    for name, fields in raw_catalog.items():
        if fields is not None and not isinstance(fields, dict):
            problem(("catalog", str(name)), f"must be a mapping with the fields {', '.join(CATALOG_FIELDS)}")
            continue
        catalog[name] = dict(fields or {})

    tenants: list[tuple[int, dict[str, Any]]] = []
    raw_tenants = data.get("tenants") or []
    if not isinstance(raw_tenants, list):
        problem(("tenants",), "must be a list of tenants, each starting with '- name: ...'")
        raw_tenants = []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(raw_tenants):
        path = ("tenants", str(i))
        if not isinstance(raw, dict):
            problem(path, "must be a mapping with name, domain, state and services")
            continue
        tenant = dict(raw)
        services = tenant.get("services")
        if services is None:
            tenant["services"] = {}
        elif isinstance(services, dict):
            # "b:" with nothing after it means the service with all catalog defaults.
            tenant["services"] = {svc: {} if fields is None else fields for svc, fields in services.items()}
        name = tenant.get("name")
        if isinstance(name, str) and name in first_index:
            problem((*path, "name"), f"tenant {name!r} is listed twice (first as tenants[{first_index[name]}])")
            continue
        if isinstance(name, str):
            first_index[name] = i
        tenants.append((i, tenant))
    if problems:
        raise YamlImportError(problems)
    return FileContent(catalog=catalog, tenants=tenants)

"""YAML import and export of the desired state: the same rows the web UI writes, as one reviewable file.

Beside the pipeline rather than in it: ``reconciler import`` / ``export`` (and GitOps jobs) call these to
fill or dump the tables that ``load.load_desired_state`` reads. The format (docs/schema.md)::

    catalog:
      a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 64M, cpus: 0.25, public: true}
      b: {image: "erp/demo-svc:1", migrate: ["/bin/erp-migrate"]}
    tenants:
      - name: acme
        domain: acme.erp.test
        state: running
        services:
          a: {replicas: 2, route: {deny: [203.0.113.0/24]}}
          b: {image: "erp/demo-svc:2", env: {ERP_LOCALE: fa_IR}}
          c:
            route: {path: /reports, allow: [10.0.0.0/8]}
            versions:
              - {image: "erp/demo-svc:1", weight: 90}
              - {image: "erp/demo-svc:2", weight: 10, replicas: 1}

Import is all-or-nothing: every catalog entry and every tenant is validated (against the database's catalog
updated by the file's) before anything is written, and any problem is reported with its file position.
Catalog entries and tenants named in the file are created or replaced; a tenant's services become exactly
the file's; tenants and catalog entries *not* in the file are left alone, so a file may carry a subset
(deleting is the UI's job, or set ``state: absent``).

Parsing: ``yaml_document``; import: ``yaml_import`` (writes in ``row_writes``); export: ``yaml_export``. This
module is the public face the CLI, the benches and the tests import.
"""

from __future__ import annotations

from desired_state.yaml_document import YamlImportError
from desired_state.yaml_export import export_yaml
from desired_state.yaml_import import ImportSummary, import_yaml

__all__ = ["ImportSummary", "YamlImportError", "export_yaml", "import_yaml"]

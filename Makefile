# Two entry points on a fresh Debian/Ubuntu machine (as root):
#   make demo    set everything up, start the local stack and reconcile the example tenants
#   make test    set everything up and run lint, types and the whole test suite (what .ci/run does)
# `make demo ENGINE=swarm` (or RECONCILER_ENGINE=swarm in the environment) runs the demo on the three-node Swarm
# lab instead (the `demo-swarm` target below); `make demo-down ENGINE=swarm` ends it.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(CURDIR)/$(VENV)/bin
STATE := .devstack
DEMO_TENANTS := deploy/examples/tenants.yaml
DEMO_SITES   := deploy/examples/sites.yaml
# Settings for the demo reconciler; the services' URLs come from $(STATE)/env (written by devstack up).
define DEMO_ENV
export PATH="$(BIN):$$PATH"
export RECONCILER_OWNER_ID=demo
export RECONCILER_ENGINE=docker
export RECONCILER_BASE_DOMAIN=erp.test
export RECONCILER_POWERDNS_ZONES='["erp.test."]'
export RECONCILER_HEALTHCHECK_COMMAND='wget -q -O- http://127.0.0.1:{port}{health}'
export RECONCILER_NGINX_STATE_DIR="$(CURDIR)/$(STATE)/nginx"
export RECONCILER_NGINX_LISTEN=127.0.0.1:8088
endef
export DEMO_ENV

ENGINE ?= $(or $(RECONCILER_ENGINE),docker)
ifeq ($(filter $(ENGINE),docker swarm),)
$(error ENGINE=$(ENGINE) is neither docker nor swarm)
endif

.PHONY: setup test lint images demo demo-down

setup:
	scripts/setup.sh

test: setup
	scripts/test.sh $(PYTEST_ARGS)

lint:
	scripts/test.sh --lint-only

images:
	deploy/images/build.sh

ifeq ($(ENGINE),swarm)
demo: demo-swarm
demo-down: demo-swarm-down
else
demo: setup
	$(BIN)/python deploy/devstack.py up --state-dir $(STATE)
	@echo "$$DEMO_ENV" > $(STATE)/demo.env
	@set -euo pipefail; . $(STATE)/env; . $(STATE)/demo.env; set -x; \
	reconciler db upgrade; \
	reconciler tenants import $(DEMO_TENANTS); \
	sed "s#@TRAEFIK_WEB_URL@#$$RECONCILER_TRAEFIK_WEB_URL#" $(DEMO_SITES) > $(STATE)/sites.yaml; \
	reconciler tenants import $(STATE)/sites.yaml; \
	rc=0; reconciler plan || rc=$$?; test $$rc -ne 1; \
	reconciler apply; \
	reconciler apply; \
	reconciler status; \
	reconciler plan >/dev/null; \
	set +x; dns_port=$${RECONCILER_POWERDNS_DNS_ADDRESS##*:}; \
	echo; echo "Try:"; \
	for domain in $$(python -c 'import sys, yaml; [print(t["domain"]) for t in yaml.safe_load(open(sys.argv[1]))["tenants"] if t.get("state", "running") == "running"]' $(DEMO_TENANTS)); do \
	  echo "  curl -H 'Host: $$domain' $$RECONCILER_TRAEFIK_WEB_URL/"; \
	  echo "  dig +short @127.0.0.1 -p $$dns_port $$domain"; \
	done; \
	echo "  curl -s $$RECONCILER_TRAEFIK_API_URL/api/http/routers | python3 -m json.tool"; \
	echo "Sites, through the reconciler's own Nginx on 127.0.0.1:8088 (docs/sites.md):"; \
	echo "  curl -si -H 'Host: news.erp.test' http://127.0.0.1:8088/ | grep X-Cache   # acme through a cached forward: MISS, then HIT"; \
	echo "  curl -s -H 'Host: blog.erp.test' http://127.0.0.1:8088/wp-admin/install.php | grep -o '<title>.*</title>'"; \
	echo "  (WordPress: finish its installation at that page, e.g. in a browser with blog.erp.test → 127.0.0.1 in /etc/hosts)"; \
	echo "  . $(STATE)/env; . $(STATE)/demo.env; reconciler plan"; \
	echo "  . $(STATE)/env; . $(STATE)/demo.env; reconciler run     # continuous: resync, Docker events, RabbitMQ nudges"; \
	echo "  . $(STATE)/env; . $(STATE)/demo.env; reconciler nudge acme"; \
	echo "Stop it all with: make demo-down"

demo-down:
	@if [[ -f $(STATE)/state.json ]]; then $(BIN)/python deploy/devstack.py down --state-dir $(STATE); fi
	@if docker info >/dev/null 2>&1; then \
	  ids=$$(docker ps -aq --filter label=tenant-reconciler.owner=demo); \
	  if [[ -n "$$ids" ]]; then docker rm -f $$ids >/dev/null; echo "removed the demo's containers"; fi; \
	  nets=$$(docker network ls -q --filter label=tenant-reconciler.owner=demo); \
	  if [[ -n "$$nets" ]]; then docker network rm $$nets >/dev/null; echo "removed the demo's networks"; fi; \
	  ids=$$(docker ps -aq --filter label=tenant-reconciler.site-owner=demo); \
	  if [[ -n "$$ids" ]]; then docker rm -f $$ids >/dev/null; echo "removed the demo sites' containers"; fi; \
	  nets=$$(docker network ls -q --filter label=tenant-reconciler.site-owner=demo); \
	  if [[ -n "$$nets" ]]; then docker network rm $$nets >/dev/null; echo "removed the demo sites' networks"; fi; \
	fi
	@if [[ -f $(STATE)/nginx/nginx.pid ]] && kill "$$(cat $(STATE)/nginx/nginx.pid)" 2>/dev/null; then \
	  echo "stopped the demo's Nginx"; fi
endif

# `make demo-swarm`: the example tenants on the three-node Swarm lab instead of one engine (RECONCILER_ENGINE=swarm,
# docs/swarm.md); no routing or DNS. `make demo-swarm-down` removes them and takes the lab down.
define SWARM_DEMO_ENV
export PATH="$(BIN):$$PATH"
export RECONCILER_DATABASE_URL="sqlite:///$(CURDIR)/$(STATE)/swarm-demo.sqlite3"
export RECONCILER_OWNER_ID=demoswarm
export RECONCILER_ENGINE=swarm
export RECONCILER_DOCKER_HOST=unix:///run/trsw/n1.sock
export RECONCILER_SWARM_REGISTRY=10.232.7.11:5000
export RECONCILER_SWARM_STATELESS=a
export RECONCILER_SWARM_NODE_HOSTS=n1=unix:///run/trsw/n1.sock,n2=unix:///run/trsw/n2.sock,n3=unix:///run/trsw/n3.sock
export RECONCILER_HEALTHCHECK_COMMAND='timeout 3 wget -q -O /dev/null http://127.0.0.1:{port}{health}'
export RECONCILER_BACKUP_DIR="$(CURDIR)/$(STATE)/swarm-backups"
export RECONCILER_BACKUP_HELPER_IMAGE=10.232.7.11:5000/erp/demo-svc:1
endef
export SWARM_DEMO_ENV

.PHONY: demo-swarm demo-swarm-down

demo-swarm: setup
	scripts/swarm.sh up
	@mkdir -p $(STATE) && echo "$$SWARM_DEMO_ENV" > $(STATE)/swarm-demo.env
	@set -euo pipefail; . $(STATE)/swarm-demo.env; set -x; \
	reconciler db upgrade; \
	reconciler tenants import $(DEMO_TENANTS); \
	reconciler apply; \
	reconciler plan; \
	docker -H $$RECONCILER_DOCKER_HOST service ls --filter label=tenant-reconciler.owner=demoswarm
	@echo "Look around with:  . $(STATE)/swarm-demo.env; reconciler status; docker -H \$$RECONCILER_DOCKER_HOST service ps ..."
	@echo "Move a tenant's data: . $(STATE)/swarm-demo.env; reconciler tenants move-data acme --to n3 --yes"
	@echo "Stop it with: make demo-swarm-down"

demo-swarm-down:
	@if [[ -S /run/trsw/n1.sock ]]; then \
	  ids=$$(docker -H unix:///run/trsw/n1.sock service ls -q --filter label=tenant-reconciler.owner=demoswarm); \
	  if [[ -n "$$ids" ]]; then docker -H unix:///run/trsw/n1.sock service rm $$ids >/dev/null; echo "removed the demo's services"; fi; \
	fi
	scripts/swarm.sh down
	rm -rf $(STATE)/swarm-demo.sqlite3 $(STATE)/swarm-demo.sqlite3.lock $(STATE)/swarm-demo.env $(STATE)/swarm-backups

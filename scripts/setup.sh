#!/usr/bin/env bash
# Prepare this machine (Debian 12 / Ubuntu, as root or with sudo) to run the reconciler and its tests.
# Idempotent: installs only missing packages (one apt-get update, only if something is missing), starts a
# Docker engine if none answers, creates .venv and installs the project, builds the demo images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
SUDO=
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi

# ------------------------------------------------------------------ apt packages
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
# nginx: the sites stage (docs/sites.md) starts its own Nginx process; the packaged service is not used.
# docker-registry, iproute2: the Swarm lab (scripts/swarm.sh, docs/swarm.md); the lab starts its registry itself.
# chromium: the console's end-to-end test drives Debian's browser through Playwright (never `playwright install`).
# socat: Swarm routing tests reach the Traefik inside the lab through a forward (tests/integration/swarm_traefik.py).
# prometheus-node-exporter: the devstack starts its own (host memory and CPU for the API's capacity, docs/api.md).
for pkg in docker.io busybox-static rabbitmq-server pdns-server pdns-backend-sqlite3 dnsutils prometheus curl debootstrap nginx \
  docker-registry iproute2 chromium socat prometheus-node-exporter; do
  installed "$pkg" || missing+=("$pkg")
done
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "apt packages: all present"
fi

# ------------------------------------------------------------------ Docker engine
if docker info >/dev/null 2>&1; then
  log "docker engine: answering"
else
  log "docker engine: not answering, starting dockerd (log: /var/log/dockerd.log)"
  $SUDO sh -c 'nohup setsid dockerd --host unix:///var/run/docker.sock >>/var/log/dockerd.log 2>&1 </dev/null &'
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    echo "setup: dockerd did not answer within 60 s; last lines of /var/log/dockerd.log:" >&2
    tail -20 /var/log/dockerd.log >&2 || true
    exit 1
  fi
  log "docker engine: started"
fi

# ------------------------------------------------------------------ Python venv with the project
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.tenant-reconciler-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]] || ! .venv/bin/python -c 'import reconciler' 2>/dev/null; then
  log "installing the project into .venv (pip install -e '.[dev]')"
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" >"$stamp"
else
  log ".venv: up to date"
fi

# ------------------------------------------------------------------ demo images
deploy/images/build.sh
# WordPress sites' images (docs/sites.md), FROM the Debian base deploy/build-image.sh makes (debootstrap).
docker image inspect local/debian-py:bookworm >/dev/null 2>&1 || deploy/build-image.sh
deploy/images/build-wordpress.sh
log "done"

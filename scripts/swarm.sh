#!/usr/bin/env bash
# The project's Swarm lab (issue 13): three Docker engines on this one host, each in a network namespace of its
# own, joined as a Swarm (n1 manager, n2 and n3 workers), with a registry on n1 that holds erp/demo-svc:1 and :2.
# The host's engine and the root namespace's networking are never touched. docs/swarm.md says why each step is so.
#
#   scripts/swarm.sh up       start it (idempotent: a lab that is fully up is left as it is; a broken one is
#                             taken down and started again)
#   scripts/swarm.sh down     remove everything `up` made: services, engines, namespaces, veths, mounts, state
#   scripts/swarm.sh status   nodes, services, registry
#   scripts/swarm.sh env      print the DOCKER_HOST of the manager (eval "$(scripts/swarm.sh env)")
#
# Needs root, iproute2, util-linux (unshare, setsid), docker.io (dockerd), docker-registry, and the host engine's
# erp/demo-svc images (deploy/images/build.sh). Everything lives under $STATE and $RUN, named trsw-*.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODES=(n1 n2 n3)
PREFIX=trsw                              # every namespace, link and cgroup of the lab starts with this
SEGMENT=10.232.7                         # the nodes' segment: n1=.11 n2=.12 n3=.13
STATE=${SWARM_LAB_STATE:-/var/lib/tenant-reconciler-swarm}   # engines' data roots, registry storage, logs
RUN=/run/$PREFIX                         # sockets, exec roots, pid files
REGISTRY=$SEGMENT.11:5000                # the lab registry, in n1's namespace
OVERLAY_POOL=10.232.128.0/17             # Swarm's overlay subnets (/24 each); apart from the reconciler's pool
IMAGES=(erp/demo-svc:1 erp/demo-svc:2)
HOST_DOCKER=${HOST_DOCKER:-unix:///var/run/docker.sock}

say() { printf '[swarm %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { say "error: $*"; exit 1; }
addr() { echo "$SEGMENT.1${1#n}"; }
netns() { echo "$PREFIX-$1"; }
socket() { echo "unix://$RUN/$1.sock"; }
node() { local n=$1; shift; docker -H "$(socket "$n")" "$@"; }
clock() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(clock)" 'BEGIN { printf "%.1fs", b - a }'; }

retry() { # SECONDS COMMAND...: run COMMAND until it succeeds or SECONDS pass
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.3
  done
}

# ---------------------------------------------------------------------------------------------- network
# The bridge sits in a namespace of its own: in the root namespace the host engine's FORWARD DROP policy would
# drop the bridged frames (br_netfilter sends them through iptables).
network_up() {
  local sw n
  sw=$(netns sw)
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add "$PREFIX-br" type bridge
  ip -n "$sw" link set "$PREFIX-br" up
  for n in "${NODES[@]}"; do
    ip netns add "$(netns "$n")"
    ip -n "$(netns "$n")" link set lo up
    ip link add "$PREFIX-$n" netns "$sw" type veth peer name eth0 netns "$(netns "$n")"
    ip -n "$sw" link set "$PREFIX-$n" master "$PREFIX-br" up
    ip -n "$(netns "$n")" addr add "$(addr "$n")/24" dev eth0
    ip -n "$(netns "$n")" link set eth0 up
    # Nothing answers DNS on 127.0.0.1 inside the namespace: lookups of public registries fail at once
    # instead of each task waiting seconds for a resolver it cannot reach.
    mkdir -p "/etc/netns/$(netns "$n")"
    echo "nameserver 127.0.0.1" >"/etc/netns/$(netns "$n")/resolv.conf"
  done
}

# ---------------------------------------------------------------------------------------------- engines
engine_up() {
  local n=$1 i=${1#n}
  mkdir -p "$STATE/$n" "$RUN/$n"
  cat >"$STATE/$n/daemon.json" <<EOF
{
  "deprecated-key-path": "$STATE/$n/key.json",
  "insecure-registries": ["$REGISTRY"],
  "bip": "10.232.2$i.1/24",
  "default-address-pools": [{"base": "10.232.$((32 + 16 * i)).0/20", "size": 24}],
  "dns": ["127.0.0.1"],
  "storage-driver": "overlay2"
}
EOF
  # setsid: the engine outlives this script and is stopped by its pid file, never by name.
  setsid -f ip netns exec "$(netns "$n")" "$HERE/swarm-node.sh" "$n" "$STATE/cgroups.list" \
    --config-file "$STATE/$n/daemon.json" --data-root "$STATE/$n/docker" --exec-root "$RUN/$n/exec" \
    -H "$(socket "$n")" --pidfile "$RUN/$n/dockerd.pid" --cgroup-parent "/$PREFIX-$n" \
    >>"$STATE/$n.log" 2>&1 </dev/null 9<&-
}

engines_up() {
  local n
  findmnt -rn -t cgroup,cgroup2 -o TARGET,FSTYPE,FS-OPTIONS >"$STATE/cgroups.list"
  for n in "${NODES[@]}"; do engine_up "$n"; done
  for n in "${NODES[@]}"; do
    retry 60 node "$n" info || { tail -5 "$STATE/$n.log" >&2; fail "the engine of $n did not answer"; }
  done
}

swarm_up() {
  local token n
  node n1 swarm init --advertise-addr "$(addr n1)" --listen-addr "$(addr n1):2377" \
    --default-addr-pool "$OVERLAY_POOL" --default-addr-pool-mask-length 24 >/dev/null
  token=$(node n1 swarm join-token -q worker)
  for n in n2 n3; do
    node "$n" swarm join --token "$token" --advertise-addr "$(addr "$n")" --listen-addr "$(addr "$n"):2377" \
      "$(addr n1):2377" >/dev/null
  done
  retry 60 nodes_ready || fail "not every node is Ready: $(node n1 node ls 2>&1)"
  for n in "${NODES[@]}"; do node n1 node update --label-add "lab.node=$n" "$n" >/dev/null; done
}

nodes_ready() { [[ $(node n1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$') == 3 ]]; }

# ---------------------------------------------------------------------------------------------- registry
registry_up() {
  command -v docker-registry >/dev/null || fail "docker-registry is not installed (scripts/setup.sh installs it)"
  mkdir -p "$STATE/registry/data"
  cat >"$STATE/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $STATE/registry/data}
http:
  addr: $REGISTRY
EOF
  setsid -f ip netns exec "$(netns n1)" sh -c 'echo $$ >"$1"; exec docker-registry serve "$2"' registry \
    "$RUN/registry.pid" "$STATE/registry/config.yml" >>"$STATE/registry.log" 2>&1 </dev/null 9<&-
  retry 20 registry_answers || fail "the registry at $REGISTRY does not answer"
}

registry_answers() { ip netns exec "$(netns n2)" busybox wget -q -O /dev/null "http://$REGISTRY/v2/"; }

images_up() {
  local image
  docker -H "$HOST_DOCKER" save "${IMAGES[@]}" | node n1 load -q >/dev/null ||
    fail "could not copy ${IMAGES[*]} from the host engine (deploy/images/build.sh builds them)"
  for image in "${IMAGES[@]}"; do
    node n1 tag "$image" "$REGISTRY/$image"
    node n1 push -q "$REGISTRY/$image" >/dev/null
  done
}

# ---------------------------------------------------------------------------------------------- up / down
lab_up() { [[ -e /run/netns/$(netns sw) ]] && nodes_ready && registry_answers 2>/dev/null; }

up() {
  [[ $(id -u) == 0 ]] || fail "run as root (network namespaces, engines)"
  local tool began
  for tool in ip dockerd docker busybox unshare setsid findmnt docker-registry; do
    command -v "$tool" >/dev/null || fail "$tool is missing (scripts/setup.sh installs the lab's packages)"
  done
  if lab_up; then
    say "already up"
    return 0
  fi
  if [[ -e /run/netns/$(netns sw) || -e $RUN || -e $STATE ]]; then
    say "a partial lab is left: taking it down first"
    down
  fi
  began=$(clock)
  mkdir -p "$STATE" "$RUN"
  network_up
  engines_up
  swarm_up
  registry_up
  images_up
  say "up in $(since "$began"): 3 nodes Ready, registry $REGISTRY holds ${IMAGES[*]}"
}

stop_by_pidfile() { # PIDFILE: SIGTERM, wait up to 30 s, then SIGKILL
  local pid
  [[ -f $1 ]] || return 0
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.3
  done
  say "pid $pid still running after 30 s: SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
}

clear_engine() { # N: remove its containers at once (SIGKILL), then leave the swarm
  local n=$1
  node "$n" info >/dev/null 2>&1 || return 0
  node "$n" ps -aq | xargs -r docker -H "$(socket "$n")" rm -f >/dev/null 2>&1 || true
  node "$n" swarm leave --force >/dev/null 2>&1 || true
}

remove_namespace() { # NAME: every process left in it was started by the lab (shims, registry)
  local ns=$1 pid
  [[ -e /run/netns/$ns ]] || return 0
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "/etc/netns/$ns"
}

down() {
  local began n
  began=$(clock)
  if node n1 info >/dev/null 2>&1; then
    node n1 service ls -q | xargs -r docker -H "$(socket n1)" service rm >/dev/null 2>&1 || true
  fi
  # The registry is needed no more; workers leave side by side, the manager last.
  stop_by_pidfile "$RUN/registry.pid" &
  clear_engine n2 &
  clear_engine n3 &
  wait
  clear_engine n1
  for n in "${NODES[@]}"; do stop_by_pidfile "$RUN/$n/dockerd.pid" & done
  wait
  for n in "${NODES[@]}" sw; do remove_namespace "$(netns "$n")"; done
  rmdir /etc/netns 2>/dev/null || true
  # Mounts of the engines stay inside their mount namespaces; any that leaked out are ours by path.
  findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$STATE" "$RUN"
  for n in "${NODES[@]}"; do
    { find /sys/fs/cgroup -depth -type d -name "$PREFIX-$n" 2>/dev/null || true; } | while read -r dir; do
      find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
  say "down in $(since "$began")"
  leftovers
}

leftovers() { # exit 1 when anything of the lab is still on the host
  local found=()
  ip netns list | grep -q "^$PREFIX-" && found+=(namespaces)
  ip -br link | grep -q "$PREFIX-" && found+=("links in the root namespace")
  [[ -e $STATE || -e $RUN ]] && found+=("state directories")
  findmnt -rn -o TARGET | grep -qE "^($STATE|$RUN)(/|$)" && found+=(mounts)
  iptables-save 2>/dev/null | grep -qE "10\.232\.|$PREFIX-" && found+=("iptables rules in the root namespace")
  { find /sys/fs/cgroup -type d -name "$PREFIX-*" 2>/dev/null || true; } | grep -q . && found+=(cgroups)
  ((${#found[@]} == 0)) || fail "left behind: ${found[*]}"
}

status() {
  local n
  for n in "${NODES[@]}"; do
    printf '%s: %s\n' "$n" "$(node "$n" info --format '{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}}' 2>&1 || true)"
  done
  node n1 node ls 2>/dev/null || true
  node n1 service ls 2>/dev/null || true
  registry_answers && echo "registry: $REGISTRY answering" || echo "registry: $REGISTRY not answering"
}

# One `up` or `down` at a time on this host (two test sessions may start the lab at once): lock this script.
locked() {
  exec 9<"${BASH_SOURCE[0]}"
  flock 9
  "$@"
}

case "${1:-}" in
  up) locked up ;;
  down) locked down ;;
  status) status ;;
  env) echo "export DOCKER_HOST=$(socket n1)" ;;
  *)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac

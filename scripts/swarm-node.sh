#!/bin/sh
# Start one engine of the Swarm lab inside its network namespace (scripts/swarm.sh runs it under `ip netns exec`).
#   swarm-node.sh NODE CGROUPS_LIST DOCKERD_ARGS...
# `ip netns exec` gives the command a mount namespace of its own with /sys mounted afresh, in which the cgroup v1
# hierarchies are gone (dockerd: "Devices cgroup isn't mounted"): mount again each one the host has (listed by
# scripts/swarm.sh in CGROUPS_LIST as TARGET FSTYPE OPTIONS), then give the engine its own hostname, so each node
# has its own name in the swarm.
set -e
node=$1
list=$2
shift 2
grep -q '^/sys/fs/cgroup ' "$list" || mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup
while read -r target fstype options; do
  mkdir -p "$target"
  if [ "$fstype" = cgroup2 ]; then
    mount -t cgroup2 none "$target"
  else
    mount -t cgroup -o "${options#rw,}" cgroup "$target"
  fi
done <"$list"
exec unshare --uts sh -c 'hostname "$0" && exec dockerd "$@"' "$node" "$@"

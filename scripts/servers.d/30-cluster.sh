# SPDX-License-Identifier: BSD-3-Clause
# Sourced by scripts/servers.sh start: a Redis Cluster of 3 masters and 3 replicas on
# loopback (cluster-1 .. cluster-6), created with redis-cli --cluster create. Exports
# RCACHE_TEST_URL_CLUSTER (one seed node: rcache detects the cluster from it) and
# RCACHE_TEST_URL_CLUSTER_SEEDS (all six nodes as a seed list).
cluster_ports=()
taken=" "
for i in 1 2 3 4 5 6; do
  p=$(free_port)
  while [[ "$taken" == *" $p "* ]]; do p=$(free_port); done
  bus=$(free_port) # the bus port too, explicitly (the default port+10000 may be in use)
  while [[ "$taken $p " == *" $bus "* ]]; do bus=$(free_port); done
  taken="$taken$p $bus "
  cluster_ports+=("$p")
  start_redis "cluster-$i" "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-port "$bus" --cluster-node-timeout 3000 --cluster-require-full-coverage no
done
cluster_nodes=()
for p in "${cluster_ports[@]}"; do
  wait_ready -h 127.0.0.1 -p "$p"
  cluster_nodes+=("127.0.0.1:$p")
done
redis-cli --cluster create "${cluster_nodes[@]}" --cluster-replicas 1 --cluster-yes >"$run/cluster-create.log" 2>&1 ||
  { cat "$run/cluster-create.log" >&2; echo "servers: cluster create failed" >&2; exit 1; }
cluster_ok() {
  for p in "${cluster_ports[@]}"; do
    redis-cli -h 127.0.0.1 -p "$p" CLUSTER INFO 2>/dev/null | grep '^cluster_state:ok' >/dev/null || return 1
    # every node must also know all six, or a client may be sent to a node that says "?"
    [ "$(redis-cli -h 127.0.0.1 -p "$p" CLUSTER NODES 2>/dev/null | grep -vc 'handshake\|noaddr')" -ge 6 ] || return 1
  done
}
for _ in $(seq 1 200); do cluster_ok && break; sleep 0.05; done
cluster_ok || { echo "servers: cluster did not reach cluster_state:ok" >&2; exit 1; }
{
  echo "export RCACHE_TEST_URL_CLUSTER=redis://127.0.0.1:${cluster_ports[0]}"
  echo "export RCACHE_TEST_URL_CLUSTER_SEEDS=redis://$(IFS=,; echo "${cluster_nodes[*]}")"
} >>"$run/env.sh"

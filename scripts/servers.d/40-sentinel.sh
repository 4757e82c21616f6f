# SPDX-License-Identifier: BSD-3-Clause
# Sourced by scripts/servers.sh start: a master, one replica and three sentinels watching
# them (group "rcache-test", quorum 2), all on loopback. Exports RCACHE_TEST_URL_SENTINEL.
sm_port=$(free_port)
start_redis sentinel-master "$sm_port"
sr_port=$(free_port)
while [ "$sr_port" = "$sm_port" ]; do sr_port=$(free_port); done
start_redis sentinel-replica "$sr_port" --replicaof 127.0.0.1 "$sm_port"
wait_ready -h 127.0.0.1 -p "$sm_port"
wait_ready -h 127.0.0.1 -p "$sr_port"
sentinel_hosts=()
for i in 1 2 3; do
  sp=$(free_port)
  while [[ " $sm_port $sr_port ${sentinel_hosts[*]} " == *":$sp "* || "$sp" = "$sm_port" || "$sp" = "$sr_port" ]]; do
    sp=$(free_port)
  done
  mkdir -p "$run/sentinel-$i"
  cat >"$run/sentinel-$i/sentinel.conf" <<CONF
bind 127.0.0.1
port $sp
daemonize yes
pidfile $run/sentinel-$i.pid
logfile $run/sentinel-$i.log
dir $run/sentinel-$i
sentinel monitor rcache-test 127.0.0.1 $sm_port 2
sentinel down-after-milliseconds rcache-test 2000
sentinel failover-timeout rcache-test 10000
sentinel parallel-syncs rcache-test 1
CONF
  redis-server "$run/sentinel-$i/sentinel.conf" --sentinel
  sentinel_hosts+=("127.0.0.1:$sp")
done
for h in "${sentinel_hosts[@]}"; do wait_ready -h 127.0.0.1 -p "${h##*:}"; done
# ready when every sentinel names the master (they find the replica and each other a few
# seconds later, in the background: the tests that fail over use servers of their own)
sentinel_ok() {
  for h in "${sentinel_hosts[@]}"; do
    redis-cli -h 127.0.0.1 -p "${h##*:}" SENTINEL get-master-addr-by-name rcache-test 2>/dev/null |
      grep -x "$sm_port" >/dev/null || return 1
  done
}
for _ in $(seq 1 200); do sentinel_ok && break; sleep 0.05; done
sentinel_ok || { echo "servers: the sentinels do not name the master" >&2; exit 1; }
echo "export RCACHE_TEST_URL_SENTINEL=redis+sentinel://$(IFS=,; echo "${sentinel_hosts[*]}")/rcache-test" >>"$run/env.sh"

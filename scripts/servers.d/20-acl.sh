# SPDX-License-Identifier: BSD-3-Clause
# Sourced by scripts/servers.sh start: an ACL user on the plain server, allowed only the
# keys under app:* (the contract suite runs as it with key_prefix=app:).
redis-cli -h 127.0.0.1 -p "$port" ACL SETUSER app on '>app-s3cret-pw' '~app:*' '+@all' >/dev/null
{
  echo "export RCACHE_TEST_ACL_PASSWORD=app-s3cret-pw"
  echo "export RCACHE_TEST_URL_ACL='redis://app:app-s3cret-pw@127.0.0.1:$port?key_prefix=app:'"
} >>"$run/env.sh"

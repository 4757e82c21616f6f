# SPDX-License-Identifier: BSD-3-Clause
# Sourced by scripts/servers.sh start: a TLS server with certificates made here by openssl.
#   ca.pem        the test CA
#   server.pem    for "localhost" and 127.0.0.1 (what the URL names: verification passes)
#   other.pem     for "other.invalid" only (a certificate for another host name: refused)
#   client.pem    a client certificate signed by the CA (mutual TLS)
#   rogue-ca.pem  a CA that signed nothing the servers use (untrusted chain: refused)
tls_dir="$run/tls"
mkdir -p "$tls_dir"
(
  cd "$tls_dir"
  mkcert() { # name CN SAN
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  }
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -subj "/CN=rcache test CA" \
    -days 2 -out ca.pem 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue-ca.key -subj "/CN=rogue CA" \
    -days 2 -out rogue-ca.pem 2>/dev/null
  mkcert server localhost "DNS:localhost,IP:127.0.0.1"
  mkcert other other.invalid "DNS:other.invalid"
  mkcert client rcache-client "DNS:rcache-client"
  chmod 600 ./*.key
)
tls_port=$(free_port)
start_redis tls 0 --tls-port "$tls_port" --tls-cert-file "$tls_dir/server.pem" \
  --tls-key-file "$tls_dir/server.key" --tls-ca-cert-file "$tls_dir/ca.pem" \
  --tls-auth-clients optional
other_port=$(free_port)
start_redis tls-other 0 --tls-port "$other_port" --tls-cert-file "$tls_dir/other.pem" \
  --tls-key-file "$tls_dir/other.key" --tls-ca-cert-file "$tls_dir/ca.pem" \
  --tls-auth-clients no
wait_ready --tls --cacert "$tls_dir/ca.pem" -h 127.0.0.1 -p "$tls_port"
wait_ready --tls --insecure -h 127.0.0.1 -p "$other_port"
{
  echo "export RCACHE_TEST_TLS_DIR=$tls_dir"
  echo "export RCACHE_TEST_TLS_PORT=$tls_port"
  echo "export RCACHE_TEST_URL_TLS='rediss://localhost:$tls_port?tls_ca=$tls_dir/ca.pem'"
  echo "export RCACHE_TEST_URL_TLS_OTHER='rediss://localhost:$other_port?tls_ca=$tls_dir/ca.pem'"
} >>"$run/env.sh"

/* Stand-ins compiled only while a source file of the library is missing from src/
 * (CMake checks). They let the rest build and fail loudly at run time. Not shipped once
 * every part exists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef RCACHE_STUB_URL
rcache_status rcache__url_parse(const char *s, rcache__url *u, char *err, size_t errlen) {
  memset(u, 0, sizeof *u);
  u->connect_timeout_ms = u->command_timeout_ms = u->pool_size = u->tls_insecure = -1;
  u->max_bytes = -1;
  if (strcmp(s, "") == 0 || strncmp(s, "none://", 7) == 0) u->scheme = RCACHE__SCHEME_NONE;
  else if (strncmp(s, "memory://", 9) == 0) u->scheme = RCACHE__SCHEME_MEMORY;
  else {
    snprintf(err, errlen, "URL: parser not built yet");
    return RCACHE_EURL;
  }
  if (strstr(s, "key_prefix=")) u->key_prefix = rcache__strdup(strstr(s, "key_prefix=") + 11);
  return RCACHE_OK;
}
void rcache__url_free(rcache__url *u) {
  free(u->key_prefix);
}
void rcache__redact(const char *in, char *out, size_t outlen) {
  snprintf(out, outlen, "%s", in);
}
#endif

#ifdef RCACHE_STUB_GLOB
bool rcache__glob_match(const char *pat, size_t plen, const char *s, size_t slen) {
  return false;
}
size_t rcache__glob_escape(const char *lit, size_t len, char *out, size_t outlen) {
  if (len >= outlen) return (size_t)-1;
  memcpy(out, lit, len);
  return len;
}
#endif

#ifdef RCACHE_STUB_MEMORY
rcache_status rcache__memory_open(rcache__ctx *ctx, rcache__backend **out) {
  rcache__errf("memory:// backend not built yet");
  return RCACHE_EURL;
}
#endif

#ifdef RCACHE_STUB_REDIS
rcache_status rcache__redis_open(rcache__ctx *ctx, rcache__backend **out) {
  rcache__errf("Redis backend not built yet");
  return RCACHE_EURL;
}
#endif

#ifdef RCACHE_STUB_CLUSTER
rcache_status rcache__cluster_open(rcache__ctx *ctx, rcache__backend **out);
rcache_status rcache__cluster_open(rcache__ctx *ctx, rcache__backend **out) {
  rcache__errf("Redis Cluster support is not built yet");
  return RCACHE_EURL;
}
#endif

#ifdef RCACHE_STUB_SENTINEL
rcache_status rcache__sentinel_open(rcache__ctx *ctx, rcache__backend **out);
rcache_status rcache__sentinel_open(rcache__ctx *ctx, rcache__backend **out) {
  rcache__errf("Redis Sentinel support is not built yet");
  return RCACHE_EURL;
}
#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/* Private redis-server processes owned by PID: see redis_proc.h. */
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np */
#include "redis_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

extern char **environ;

#define START_WAIT_MS 5000
#define STOP_WAIT_MS 5000

/* ---- the kill-at-exit registry: every PID started, killed however the test ends ---------------
 */

#define REG_MAX 64

static volatile pid_t reg_pid[REG_MAX];
static char reg_dir[REG_MAX][256];
static bool reg_used[REG_MAX];
static int reg_n; /* high-water mark: the signal handler looks no further */
static bool reg_installed;
/* The process whose servers these are: a child the test forks inherits the registry, the
 * atexit handler and the signal handlers, and must not kill its parent's servers. */
static volatile pid_t reg_owner;

/* Async-signal-safe: continue (a paused server would not die of SIGTERM; SIGKILL works
 * anyway, the SIGCONT is belt and braces), then kill. */
static void reg_kill_all(void) {
  if (getpid() != reg_owner) return;
  for (int i = 0; i < reg_n; i++) {
    pid_t p = reg_pid[i];
    if (p > 0) {
      kill(p, SIGCONT);
      kill(p, SIGKILL);
    }
  }
}

static bool keep_dirs(void) {
  const char *k = getenv("RCACHE_TEST_KEEP");
  return k && *k;
}

void rp_remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static void reg_at_exit(void) {
  if (getpid() != reg_owner) return;
  reg_kill_all();
  for (int i = 0; i < reg_n; i++) {
    if (reg_pid[i] > 0) waitpid(reg_pid[i], NULL, 0);
    reg_pid[i] = 0;
    if (reg_dir[i][0] && !keep_dirs()) rp_remove_dir(reg_dir[i]);
  }
}

static void reg_on_signal(int sig) {
  reg_kill_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void reg_install(void) {
  if (reg_installed && reg_owner != getpid()) { /* a forked child starts its own servers */
    memset((void *)reg_pid, 0, sizeof reg_pid);
    memset(reg_used, 0, sizeof reg_used);
    memset(reg_dir, 0, sizeof reg_dir);
    reg_n = 0;
  }
  reg_owner = getpid();
  if (reg_installed) return;
  reg_installed = true;
  atexit(reg_at_exit);
  /* SIGSEGV/SIGBUS are left to the sanitizers (which then abort: SIGABRT lands here); in a
   * plain build the parent-death signal of each child covers them. */
  int sigs[] = {SIGABRT, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reg_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sigs[i], &sa, NULL);
  }
}

static int reg_take(const char *dir) {
  reg_install();
  for (int i = 0; i < REG_MAX; i++) {
    if (reg_used[i]) continue;
    reg_used[i] = true;
    reg_pid[i] = 0;
    snprintf(reg_dir[i], sizeof reg_dir[i], "%s", dir);
    if (i >= reg_n) reg_n = i + 1;
    return i;
  }
  fprintf(stderr, "redis_proc: more than %d servers at once\n", REG_MAX);
  return -1;
}

/* ---- ports, paths, time ---------------------------------------------------------------------- */

static bool can_bind(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

int rp_free_port(void) {
  static unsigned seed;
  static int given[256], ngiven;
  if (!seed) seed = (unsigned)getpid() ^ (unsigned)time(NULL);
  for (int tries = 0; tries < 1000; tries++) {
    int port = 20000 + (int)(rand_r(&seed) % 10000);
    bool used = false;
    for (int i = 0; i < ngiven && !used; i++)
      used = given[i] == port;
    if (used || !can_bind(port)) continue;
    if (ngiven < (int)(sizeof given / sizeof given[0])) given[ngiven++] = port;
    return port;
  }
  return -1;
}

int rp_mkdir(char *dir, size_t size, const char *tag) {
  const char *base = getenv("RCACHE_TEST_RUN_DIR");
  snprintf(dir, size, "%s/%s-XXXXXX", base && *base ? base : "/tmp", tag ? tag : "redis");
  if (mkdtemp(dir)) return 0;
  fprintf(stderr, "redis_proc: mkdtemp %s: %s\n", dir, strerror(errno));
  dir[0] = '\0';
  return -1;
}

int64_t rp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rp_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* A program on PATH, resolved before fork (execvp may allocate in the child). */
static const char *find_program(const char *name, char *found, size_t size) {
  if (found[0]) return found;
  const char *p = getenv("PATH");
  if (!p) p = "/usr/local/bin:/usr/bin:/bin";
  while (*p) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > 0 && n + strlen(name) + 2 < size) {
      snprintf(found, size, "%.*s/%s", (int)n, p, name);
      if (access(found, X_OK) == 0) return found;
    }
    p += n + (end ? 1 : 0);
  }
  found[0] = '\0';
  fprintf(stderr, "redis_proc: %s not found on PATH\n", name);
  return NULL;
}

/* ---- processes ------------------------------------------------------------------------------- */

/* Starts exe with argv, stdout and stderr appended to <dir>/out.log, no descriptor of ours
 * inherited (a copy of rcache's connections or a proxy's listener would live on in the
 * server), through setpriv --pdeathsig KILL (util-linux) when it is on PATH so that a server
 * dies with the test even when the test is killed. posix_spawn, not fork: fork() of this
 * process copies the page tables of every thread's memory (with ASan's shadow, 60-160 ms on
 * a quiet 2-core VM, several hundred under load) and ASan holds its allocator locked
 * meanwhile, so each malloc of the fault suite's callers waited out a server restart and the
 * suite saw the library miss its deadlines (CI, 2026-12-07: a set took 1,643 ms). Returns
 * the PID (the server's own: setpriv execs it), or -1 with errno. */
static pid_t spawn(const char *exe, char *const *argv, const char *dir) {
  static char setpriv[512];
  static bool looked;
  if (!looked) {
    looked = true;
    if (!find_program("setpriv", setpriv, sizeof setpriv))
      fprintf(stderr, "redis_proc: servers will not die with the test\n");
  }
  char *args[RP_MAX_ARGS + 16];
  int n = 0;
  if (setpriv[0]) {
    args[n++] = (char *)"setpriv";
    args[n++] = (char *)"--pdeathsig";
    args[n++] = (char *)"KILL";
    args[n++] = (char *)"--";
    args[n++] = (char *)exe;
    argv++;
  }
  for (; *argv && n < (int)(sizeof args / sizeof args[0]) - 1; argv++)
    args[n++] = *argv;
  args[n] = NULL;
  char outf[300];
  snprintf(outf, sizeof outf, "%s/out.log", dir);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none;
  sigemptyset(&none);
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc == 0) {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, outf, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    rc = posix_spawnattr_init(&at);
    if (rc == 0) {
      posix_spawnattr_setsigmask(&at, &none);
      posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
      pid_t pid;
      rc = posix_spawn(&pid, setpriv[0] ? setpriv : exe, &fa, &at, args, environ);
      posix_spawnattr_destroy(&at);
      posix_spawn_file_actions_destroy(&fa);
      if (rc == 0) return pid;
    } else {
      posix_spawn_file_actions_destroy(&fa);
    }
  }
  errno = rc;
  return -1;
}

static void print_log(const rp_server *s) {
  const char *names[] = {"redis.log", "out.log"};
  char path[512], line[512];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", s->dir, names[i]);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    fprintf(stderr, "---- %s (port %d)\n", path, s->port);
    while (fgets(line, sizeof line, f))
      fputs(line, stderr);
    fclose(f);
  }
}

/* ---- building the command line --------------------------------------------------------------- */

static int add_arg(rp_server *s, const char *a) {
  size_t n = strlen(a) + 1;
  if (s->nargs >= RP_MAX_ARGS - 1 || s->argused + n > sizeof s->argbuf) {
    fprintf(stderr, "redis_proc: more than %d arguments or %zu bytes of them\n", RP_MAX_ARGS - 1,
            sizeof s->argbuf);
    return -1;
  }
  memcpy(s->argbuf + s->argused, a, n);
  s->argoff[s->nargs++] = (int)s->argused;
  s->argused += n;
  return 0;
}

/* Adds NULL-terminated pairs of arguments; 0 or -1. */
static int add_args(rp_server *s, const char *const *list) {
  for (; list && *list; list++)
    if (add_arg(s, *list) != 0) return -1;
  return 0;
}

static int add_tls(rp_server *s, const char *tls_dir) {
  char port[16], cert[300], key[300], ca[300];
  s->tls_port = rp_free_port();
  if (s->tls_port < 0) return -1;
  snprintf(port, sizeof port, "%d", s->tls_port);
  snprintf(cert, sizeof cert, "%s/server.pem", tls_dir);
  snprintf(key, sizeof key, "%s/server.key", tls_dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
  const char *a[] = {"--tls-port",
                     port,
                     "--tls-cert-file",
                     cert,
                     "--tls-key-file",
                     key,
                     "--tls-ca-cert-file",
                     ca,
                     "--tls-auth-clients",
                     "no",
                     NULL};
  return add_args(s, a);
}

/* The config file (sentinel.conf for a sentinel, else redis.conf) goes first. */
static int add_conf(rp_server *s, const rp_opts *o) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s", s->dir, o->sentinel ? "sentinel.conf" : "redis.conf");
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(o->conf ? o->conf : "", f);
  if (fclose(f) != 0) return -1;
  if (add_arg(s, path) != 0) return -1;
  return o->sentinel ? add_arg(s, "--sentinel") : 0;
}

static int add_listeners(rp_server *s, const rp_opts *o) {
  char port[16];
  snprintf(port, sizeof port, "%d", s->port);
  const char *a[] = {"--bind", "127.0.0.1", "--port", port, NULL};
  if (add_args(s, a) != 0) return -1;
  if (o->unix_socket) {
    int n = snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    if (n < 0 || (size_t)n >= sizeof s->sock) {
      fprintf(stderr, "redis_proc: %s is too long for a Unix socket path\n", s->dir);
      s->sock[0] = '\0';
      return -1;
    }
    const char *u[] = {"--unixsocket", s->sock, "--unixsocketperm", "700", NULL};
    if (add_args(s, u) != 0) return -1;
  }
  return o->tls_dir ? add_tls(s, o->tls_dir) : 0;
}

static int build_args(rp_server *s, const rp_opts *o) {
  char logf[300];
  snprintf(logf, sizeof logf, "%s/redis.log", s->dir);
  if ((o->sentinel || o->conf) && add_conf(s, o) != 0) return -1;
  if (add_listeners(s, o) != 0) return -1;
  const char *common[] = {"--daemonize", "no", "--dir", s->dir, "--logfile", logf, NULL};
  if (add_args(s, common) != 0) return -1;
  if (!o->sentinel) {
    const char *nopersist[] = {"--save", "", "--appendonly", "no", NULL};
    if (add_args(s, nopersist) != 0) return -1;
  }
  if (s->password[0]) {
    const char *pw[] = {"--requirepass", s->password, NULL};
    const char *ma[] = {"--masterauth", s->password, NULL};
    if (add_args(s, pw) != 0 || (!o->sentinel && add_args(s, ma) != 0)) return -1;
  }
  return add_args(s, o->args);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int rp_init(rp_server *s, const rp_opts *o) {
  static const rp_opts defaults;
  if (!o) o = &defaults;
  memset(s, 0, sizeof *s);
  s->slot = -1;
  if (o->password) snprintf(s->password, sizeof s->password, "%s", o->password);
  if (o->port == 0) {
    s->port = rp_free_port();
    if (s->port < 0) {
      fprintf(stderr, "redis_proc: no free port\n");
      return -1;
    }
  } else if (o->port > 0) {
    s->port = o->port;
  }
  if (rp_mkdir(s->dir, sizeof s->dir, o->tag) != 0) return -1;
  s->slot = reg_take(s->dir);
  if (s->slot < 0 || build_args(s, o) != 0) {
    rp_destroy(s);
    return -1;
  }
  return 0;
}

/* Ready: 1 (PONG, or -LOADING when accepted), 0 not yet. A TLS-only server: its TLS port
 * accepts a connection. */
static int ready(const rp_server *s, bool accept_loading) {
  if (!s->port && !s->sock[0]) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->tls_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
  }
  redisContext *c = rp_connect(s, 200);
  if (!c) return 0;
  redisReply *r = redisCommand(c, "PING");
  int st = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
  if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LOADING", 7)) st = accept_loading;
  if (r) freeReplyObject(r);
  redisFree(c);
  return st;
}

static void forget(rp_server *s) {
  s->pid = 0;
  s->paused = false;
  if (s->slot >= 0) reg_pid[s->slot] = 0;
}

int rp_launch(rp_server *s, bool accept_loading) {
  static char exe[512];
  if (s->slot < 0 || !find_program("redis-server", exe, sizeof exe)) return -1;
  char *argv[RP_MAX_ARGS + 1];
  argv[0] = (char *)"redis-server";
  for (int i = 0; i < s->nargs; i++)
    argv[i + 1] = s->argbuf + s->argoff[i];
  argv[s->nargs + 1] = NULL;
  pid_t pid = spawn(exe, argv, s->dir);
  if (pid < 0) {
    fprintf(stderr, "redis_proc: spawn: %s\n", strerror(errno));
    return -1;
  }
  s->pid = pid;
  s->paused = false;
  reg_pid[s->slot] = pid;
  for (int64_t until = rp_now_ms() + START_WAIT_MS; rp_now_ms() < until; rp_sleep_ms(20)) {
    if (ready(s, accept_loading)) return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      forget(s);
      fprintf(stderr, "redis_proc: redis-server (port %d) exited during start\n", s->port);
      print_log(s);
      return -1;
    }
  }
  fprintf(stderr, "redis_proc: redis-server (port %d) not ready within %d ms\n", s->port,
          START_WAIT_MS);
  print_log(s);
  rp_kill(s);
  return -1;
}

int rp_start(rp_server *s, const rp_opts *o) {
  for (int tries = 0; tries < 5; tries++) {
    if (rp_init(s, o) != 0) return -1;
    if (rp_launch(s, false) == 0) return 0;
    rp_destroy(s);
    if (o && o->port > 0) return -1; /* a fixed port: nothing else to try */
    /* probably a port taken between the check and the bind: try others */
  }
  return -1;
}

void rp_kill(rp_server *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGKILL);
  kill(s->pid, SIGCONT);
  waitpid(s->pid, NULL, 0);
  forget(s);
}

int rp_stop(rp_server *s) {
  if (s->pid <= 0) return 0;
  kill(s->pid, SIGCONT);
  kill(s->pid, SIGTERM);
  for (int64_t until = rp_now_ms() + STOP_WAIT_MS; rp_now_ms() < until; rp_sleep_ms(10)) {
    if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
      forget(s);
      return 0;
    }
  }
  rp_kill(s);
  return -1;
}

void rp_pause(rp_server *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGSTOP);
  s->paused = true;
}

void rp_resume(rp_server *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGCONT);
  s->paused = false;
}

int rp_restart(rp_server *s, bool accept_loading) {
  rp_kill(s);
  return rp_launch(s, accept_loading);
}

void rp_destroy(rp_server *s) {
  rp_kill(s);
  s->nargs = 0;
  s->argused = 0;
  if (s->dir[0] && !keep_dirs()) rp_remove_dir(s->dir);
  s->dir[0] = '\0';
  if (s->slot >= 0) {
    reg_dir[s->slot][0] = '\0';
    reg_used[s->slot] = false;
    s->slot = -1;
  }
}

/* ---- talking to servers ---------------------------------------------------------------------- */

void rp_url(const rp_server *s, char *buf, size_t size, const char *query) {
  const char *q = query ? query : "";
  char auth[80] = "";
  if (s->password[0]) snprintf(auth, sizeof auth, ":%s@", s->password);
  if (s->port) {
    snprintf(buf, size, "redis://%s127.0.0.1:%d%s", auth, s->port, q);
  } else {
    snprintf(buf, size, "unix://%s%s%s", auth, s->sock, q);
  }
}

/* A connection to port (or the Unix socket sock when port is 0), AUTH password sent when
 * given; NULL when unreachable or refused. */
static redisContext *connect_to(int port, const char *sock, const char *password, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  redisContext *c =
      port ? redisConnectWithTimeout("127.0.0.1", port, tv) : redisConnectUnixWithTimeout(sock, tv);
  if (!c || c->err) {
    if (c) redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  if (password && *password) {
    redisReply *r = redisCommand(c, "AUTH %s", password);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    if (!ok) {
      redisFree(c);
      return NULL;
    }
  }
  return c;
}

redisContext *rp_connect(const rp_server *s, int timeout_ms) {
  return connect_to(s->port, s->sock, s->password, timeout_ms);
}

static redisReply *vcommand(redisContext *c, const char *fmt, va_list ap) {
  if (!c) return NULL;
  redisReply *r = redisvCommand(c, fmt, ap);
  redisFree(c);
  return r;
}

redisReply *rp_command(const rp_server *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcommand(rp_connect(s, 2000), fmt, ap);
  va_end(ap);
  return r;
}

bool rp_do(const rp_server *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcommand(rp_connect(s, 2000), fmt, ap);
  va_end(ap);
  bool ok = r && r->type != REDIS_REPLY_ERROR;
  if (!ok)
    fprintf(stderr, "redis_proc: port %d: \"%s\" failed: %s\n", s->port, fmt,
            r ? r->str : "no reply");
  if (r) freeReplyObject(r);
  return ok;
}

redisReply *rp_cmd(int port, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcommand(connect_to(port, NULL, NULL, 1000), fmt, ap);
  va_end(ap);
  return r;
}

redisReply *rp_cmd_auth(int port, const char *password, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcommand(connect_to(port, NULL, password, 1000), fmt, ap);
  va_end(ap);
  return r;
}

bool rp_reply_has(redisReply *r, const char *needle) {
  bool yes = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str &&
             strstr(r->str, needle);
  if (r) freeReplyObject(r);
  return yes;
}

bool rp_ok(redisReply *r) {
  bool ok = r && r->type != REDIS_REPLY_ERROR;
  if (r && !ok) fprintf(stderr, "  server error: %s\n", r->str);
  if (r) freeReplyObject(r);
  return ok;
}

int rp_role_master(int port, const char *password) {
  redisReply *r = rp_cmd_auth(port, password, "ROLE");
  int m = -1;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str)
    m = strcmp(r->element[0]->str, "master") == 0;
  if (r) freeReplyObject(r);
  return m;
}

/* ---- a private cluster ----------------------------------------------------------------------- */

/* Every running node says cluster_state:ok and knows every node (no handshake left). */
static bool cluster_ok(rp_cluster *c) {
  for (int i = 0; i < c->n; i++) {
    if (c->node[i].pid <= 0) continue;
    if (!rp_reply_has(rp_cmd(c->node[i].port, "CLUSTER INFO"), "cluster_state:ok")) return false;
    redisReply *r = rp_cmd(c->node[i].port, "CLUSTER NODES");
    int known = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
      char *save = NULL;
      for (char *line = strtok_r(r->str, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (!strstr(line, "handshake") && !strstr(line, "noaddr")) known++;
    }
    if (r) freeReplyObject(r);
    if (known < c->n) return false;
  }
  return true;
}

/* Every replica has finished its first sync. */
static bool replicas_synced(rp_cluster *c) {
  for (int i = 0; i < c->n; i++) {
    redisReply *r = rp_cmd(c->node[i].port, "INFO replication");
    bool replica = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "role:slave");
    bool up = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") &&
              strstr(r->str, "master_sync_in_progress:0");
    if (r) freeReplyObject(r);
    if (replica && !up) return false;
  }
  return true;
}

/* One cluster node: a free bus port on top of the usual; retried on other ports when one
 * was taken meanwhile. */
static int start_cluster_node(rp_server *s, int node_timeout_ms, const char *tls_dir) {
  for (int attempt = 0; attempt < 5; attempt++) {
    char bus[16], timeout[16];
    int b = rp_free_port();
    snprintf(bus, sizeof bus, "%d", b);
    snprintf(timeout, sizeof timeout, "%d", node_timeout_ms);
    const char *args[] = {
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", bus,
        "--cluster-node-timeout", timeout, "--cluster-replica-validity-factor", "0",
        "--repl-diskless-sync-delay", "0",
        /* the other masters keep serving while one is down (with the
         * default, every node answers CLUSTERDOWN until it is replaced) */
        "--cluster-require-full-coverage", "no",
        /* with TLS, the bus and replication too (ignored without) */
        tls_dir ? "--tls-cluster" : NULL, "yes", "--tls-replication", "yes", NULL};
    rp_opts o = {.tag = "cluster-node", .args = args, .tls_dir = tls_dir};
    if (b > 0 && rp_start(s, &o) == 0) {
      s->bus = b;
      return 0;
    }
  }
  return -1;
}

static int cluster_create(rp_cluster *c, int replicas) {
  static char exe[512];
  if (!find_program("redis-cli", exe, sizeof exe)) return -1;
  char ports[RP_CLUSTER_MAX][32], reps[8];
  char *argv[RP_CLUSTER_MAX + 8] = {"redis-cli", "--cluster", "create"};
  int k = 3;
  for (int i = 0; i < c->n; i++) {
    snprintf(ports[i], sizeof ports[i], "127.0.0.1:%d", c->node[i].port);
    argv[k++] = ports[i];
  }
  snprintf(reps, sizeof reps, "%d", replicas);
  argv[k++] = "--cluster-replicas";
  argv[k++] = reps;
  argv[k++] = "--cluster-yes";
  argv[k] = NULL;
  pid_t p = spawn(exe, argv, c->node[0].dir);
  int st = 0;
  if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "redis-cli --cluster create failed (see %s/out.log)\n", c->node[0].dir);
    return -1;
  }
  return 0;
}

int rp_cluster_start(rp_cluster *c, int masters, int replicas, int node_timeout_ms,
                     const char *tls_dir) {
  memset(c, 0, sizeof *c);
  c->masters = masters;
  c->n = masters * (1 + replicas);
  if (c->n > RP_CLUSTER_MAX) {
    fprintf(stderr, "redis_proc: more than %d cluster nodes\n", RP_CLUSTER_MAX);
    return -1;
  }
  for (int i = 0; i < c->n; i++)
    if (start_cluster_node(&c->node[i], node_timeout_ms, tls_dir) != 0) return -1;
  if (cluster_create(c, replicas) != 0) return -1;
  for (int64_t until = rp_now_ms() + 15000; rp_now_ms() < until; rp_sleep_ms(50))
    if (cluster_ok(c) && replicas_synced(c)) return 0;
  fprintf(stderr, "private cluster did not reach cluster_state:ok\n");
  return -1;
}

int rp_cluster_add_master(rp_cluster *c, int node_timeout_ms, const char *tls_dir) {
  if (c->n >= RP_CLUSTER_MAX) {
    fprintf(stderr, "redis_proc: more than %d cluster nodes\n", RP_CLUSTER_MAX);
    return -1;
  }
  rp_server *s = &c->node[c->n];
  if (start_cluster_node(s, node_timeout_ms, tls_dir) != 0) return -1;
  if (!rp_ok(rp_cmd(c->node[0].port, "CLUSTER MEET 127.0.0.1 %d %d", s->port, s->bus))) {
    fprintf(stderr, "redis_proc: CLUSTER MEET of node %d refused\n", c->n);
    return -1;
  }
  c->n++;
  for (int64_t until = rp_now_ms() + 15000; rp_now_ms() < until; rp_sleep_ms(50))
    if (cluster_ok(c)) return c->n - 1;
  fprintf(stderr, "redis_proc: the cluster did not take in node %d\n", c->n - 1);
  return -1;
}

void rp_cluster_url(const rp_cluster *c, int i, char *buf, size_t size, const char *query) {
  snprintf(buf, size, "redis://127.0.0.1:%d%s", c->node[i].port, query ? query : "");
}

bool rp_node_id(int port, char *id, size_t size) {
  redisReply *r = rp_cmd(port, "CLUSTER MYID");
  bool ok = r && r->type == REDIS_REPLY_STRING;
  if (ok) snprintf(id, size, "%s", r->str);
  if (r) freeReplyObject(r);
  return ok;
}

int rp_cluster_owner(rp_cluster *c, unsigned slot) {
  for (int i = 0; i < c->n; i++) {
    if (c->node[i].pid <= 0) continue;
    redisReply *r = rp_cmd(c->node[i].port, "CLUSTER SLOTS");
    int port = -1;
    for (size_t j = 0; r && r->type == REDIS_REPLY_ARRAY && j < r->elements; j++) {
      redisReply *e = r->element[j];
      if ((long long)slot >= e->element[0]->integer && (long long)slot <= e->element[1]->integer)
        port = (int)e->element[2]->element[1]->integer;
    }
    if (r) freeReplyObject(r);
    for (int k = 0; port > 0 && k < c->n; k++)
      if (c->node[k].port == port) return k;
    if (port > 0) return -1;
  }
  return -1;
}

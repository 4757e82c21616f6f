/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private redis-server processes for the cluster and sentinel tests that disturb their
 * servers (failover, migration, kill): loopback only, free ports picked here (20000-29999,
 * checked by binding), never daemonized, each PID recorded and killed at exit however the
 * test ends (atexit, fatal signals, and PR_SET_PDEATHSIG in the child). Header-only: each
 * test includes it once. Call the start/stop functions from the main thread.
 */
#ifndef RCACHE_TEST_CLUSTER_PROCS_H
#define RCACHE_TEST_CLUSTER_PROCS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#define PR_MAX 64
/* every helper: a test uses only some of them */
#define PR_FN static __attribute__((unused))

typedef struct pr_node {
  int port, bus;
  int tls_port; /* 0 without TLS */
  pid_t pid;
  char dir[256];
} pr_node;

static volatile pid_t pr_pids[PR_MAX];
static char pr_dirs[PR_MAX][256];
static int pr_n;

PR_FN void pr_kill_all(void) {
  for (int i = 0; i < pr_n; i++) {
    pid_t p = pr_pids[i];
    if (p > 0) {
      kill(p, SIGCONT);
      kill(p, SIGKILL);
    }
  }
}

PR_FN void pr_rmdir(const char *dir) {
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

PR_FN void pr_at_exit(void) {
  pr_kill_all();
  for (int i = 0; i < pr_n; i++) {
    if (pr_pids[i] > 0) waitpid(pr_pids[i], NULL, 0);
    pr_pids[i] = 0;
    if (pr_dirs[i][0] && !getenv("RCACHE_TEST_KEEP")) pr_rmdir(pr_dirs[i]);
  }
}

PR_FN void pr_on_signal(int sig) {
  pr_kill_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

PR_FN void pr_install(void) {
  static bool done;
  if (done) return;
  done = true;
  atexit(pr_at_exit);
  int sigs[] = {SIGABRT, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pr_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sigs[i], &sa, NULL);
  }
}

/* A port that 127.0.0.1 can bind now and that no earlier call returned. */
PR_FN int pr_free_port(void) {
  static unsigned seed;
  static int given[64], ngiven;
  if (!seed) seed = (unsigned)getpid() ^ (unsigned)time(NULL);
  for (int tries = 0; tries < 1000; tries++) {
    int port = 20000 + (int)(rand_r(&seed) % 10000);
    bool used = false;
    for (int i = 0; i < ngiven && !used; i++)
      used = given[i] == port;
    if (used) continue;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    if (ok) {
      if (ngiven < 64) given[ngiven++] = port;
      return port;
    }
  }
  return -1;
}

PR_FN void pr_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

PR_FN int64_t pr_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fork + exec argv (argv[0] is looked up on PATH), output to dir/out.log. Returns the pid
 * (registered for the kill at exit) or -1. */
PR_FN pid_t pr_spawn(char *const *argv, const char *dir, bool register_it) {
  pr_install();
  char outf[300];
  snprintf(outf, sizeof outf, "%s/out.log", dir);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int out = open(outf, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int in = open("/dev/null", O_RDONLY);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    if (in >= 0) dup2(in, 0);
    for (int fd = 3; fd < 1024; fd++)
      close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], argv);
    _exit(127);
  }
  if (register_it && pr_n < PR_MAX) {
    pr_pids[pr_n] = pid;
    snprintf(pr_dirs[pr_n], sizeof pr_dirs[0], "%s", dir);
    pr_n++;
  }
  return pid;
}

PR_FN void pr_forget(pid_t pid) {
  for (int i = 0; i < pr_n; i++)
    if (pr_pids[i] == pid) pr_pids[i] = 0;
}

PR_FN void pr_kill(pr_node *n) {
  if (n->pid <= 0) return;
  kill(n->pid, SIGKILL);
  waitpid(n->pid, NULL, 0);
  pr_forget(n->pid);
  n->pid = 0;
}

/* A fresh directory under $RCACHE_TEST_RUN_DIR (or /tmp). */
PR_FN int pr_mkdir(char *dir, size_t size, const char *tag) {
  const char *base = getenv("RCACHE_TEST_RUN_DIR");
  snprintf(dir, size, "%s/%s-XXXXXX", base && *base ? base : "/tmp", tag);
  return mkdtemp(dir) ? 0 : -1;
}

/* One command on a fresh connection to 127.0.0.1:port (AUTH with password when given).
 * NULL when the server could not be reached. */
PR_FN redisReply *pr_cmdv(int port, const char *password, const char *fmt, va_list ap) {
  struct timeval tv = {1, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (!c || c->err) {
    if (c) redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  if (password) {
    redisReply *a = redisCommand(c, "AUTH %s", password);
    if (a) freeReplyObject(a);
  }
  redisReply *r = redisvCommand(c, fmt, ap);
  redisFree(c);
  return r;
}

PR_FN redisReply *pr_cmd(int port, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = pr_cmdv(port, NULL, fmt, ap);
  va_end(ap);
  return r;
}

PR_FN redisReply *pr_cmd_auth(int port, const char *password, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = pr_cmdv(port, password, fmt, ap);
  va_end(ap);
  return r;
}

/* True when the reply is a string/status containing `needle` (the reply is freed). */
PR_FN bool pr_reply_has(redisReply *r, const char *needle) {
  bool yes = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str &&
             strstr(r->str, needle);
  if (r) freeReplyObject(r);
  return yes;
}

PR_FN bool pr_ok(redisReply *r) {
  bool ok = r && r->type != REDIS_REPLY_ERROR;
  if (r && !ok) fprintf(stderr, "  server error: %s\n", r->str);
  if (r) freeReplyObject(r);
  return ok;
}

PR_FN bool pr_wait_ping(int port, const char *password, int ms) {
  for (int64_t until = pr_now_ms() + ms; pr_now_ms() < until; pr_sleep_ms(20))
    if (pr_reply_has(pr_cmd_auth(port, password, "PING"), "PONG")) return true;
  return false;
}

/* Waits until 127.0.0.1:port accepts connections (1), or the process exits (-1: reaped
 * and forgotten), or ms pass (0). */
PR_FN int pr_wait_listening(pr_node *n, int ms) {
  for (int64_t until = pr_now_ms() + ms; pr_now_ms() < until; pr_sleep_ms(10)) {
    int st;
    if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
      pr_forget(n->pid);
      n->pid = 0;
      return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)n->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    if (ok) return 1;
  }
  return 0;
}

/* Starts redis-server on a free port with extra args (NULL-terminated) and waits until it
 * listens; a port taken meanwhile (the server exits) is retried on another. */
PR_FN int pr_start_node(pr_node *n, const char *tag, const char *const *extra) {
  for (int attempt = 0; attempt < 5; attempt++) {
    memset(n, 0, sizeof *n);
    if (pr_mkdir(n->dir, sizeof n->dir, tag) != 0) return -1;
    n->port = pr_free_port();
    if (n->port < 0) return -1;
    char port[16], logf[300];
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(logf, sizeof logf, "%s/redis.log", n->dir);
    const char *argv[48] = {"redis-server", "--bind", "127.0.0.1",    "--port",    port,
                            "--save",       "",       "--appendonly", "no",        "--daemonize",
                            "no",           "--dir",  n->dir,         "--logfile", logf};
    int k = 15;
    for (; extra && *extra && k < 46; extra++)
      argv[k++] = *extra;
    argv[k] = NULL;
    n->pid = pr_spawn((char *const *)argv, n->dir, true);
    if (n->pid <= 0) return -1;
    int w = pr_wait_listening(n, 5000);
    if (w == 1) return 0;
    if (w == 0) return -1; /* alive but not listening: something else is wrong */
    fprintf(stderr, "  redis-server exited at start (port %d taken?), trying another port\n",
            n->port);
  }
  return -1;
}

/* ---- a private cluster ----------------------------------------------------------------------- */

typedef struct pr_cluster {
  pr_node node[PR_MAX];
  int n, masters;
} pr_cluster;

PR_FN bool pr_cluster_ok(pr_cluster *c) {
  for (int i = 0; i < c->n; i++) {
    if (c->node[i].pid <= 0) continue;
    if (!pr_reply_has(pr_cmd(c->node[i].port, "CLUSTER INFO"), "cluster_state:ok")) return false;
    redisReply *r = pr_cmd(c->node[i].port, "CLUSTER NODES");
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
PR_FN bool pr_replicas_synced(pr_cluster *c) {
  for (int i = 0; i < c->n; i++) {
    redisReply *r = pr_cmd(c->node[i].port, "INFO replication");
    bool replica = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "role:slave");
    bool up = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") &&
              strstr(r->str, "master_sync_in_progress:0");
    if (r) freeReplyObject(r);
    if (replica && !up) return false;
  }
  return true;
}

/* masters + masters×replicas nodes, created with redis-cli --cluster create. With tls_dir
 * (holding server.pem, server.key, ca.pem), each node also has a TLS port and the cluster
 * bus runs over TLS; the plain ports stay for the test's own raw commands. */
PR_FN int pr_cluster_start_tls(pr_cluster *c, int masters, int replicas, int node_timeout_ms,
                               const char *tls_dir) {
  memset(c, 0, sizeof *c);
  c->masters = masters;
  c->n = masters * (1 + replicas);
  char timeout[16];
  snprintf(timeout, sizeof timeout, "%d", node_timeout_ms);
  for (int i = 0, attempt = 0; i < c->n; i++) {
    char bus[16];
    int b = pr_free_port();
    snprintf(bus, sizeof bus, "%d", b);
    char tport[16], cert[300], key[300], ca[300];
    int tp = tls_dir ? pr_free_port() : 0;
    snprintf(tport, sizeof tport, "%d", tp);
    snprintf(cert, sizeof cert, "%s/server.pem", tls_dir ? tls_dir : "");
    snprintf(key, sizeof key, "%s/server.key", tls_dir ? tls_dir : "");
    snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir ? tls_dir : "");
    const char *extra[32] = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                             "--cluster-port", bus, "--cluster-node-timeout", timeout,
                             "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay",
                             "0",
                             /* the other masters keep serving while one is down (with the
                              * default, every node answers CLUSTERDOWN until it is replaced) */
                             "--cluster-require-full-coverage", "no", NULL};
    if (tls_dir) {
      const char *t[] = {"--tls-port",
                         tport,
                         "--tls-cert-file",
                         cert,
                         "--tls-key-file",
                         key,
                         "--tls-ca-cert-file",
                         ca,
                         "--tls-auth-clients",
                         "no",
                         "--tls-cluster",
                         "yes",
                         "--tls-replication",
                         "yes",
                         NULL};
      int k = 0;
      while (extra[k])
        k++;
      for (int j = 0; t[j]; j++)
        extra[k++] = t[j];
      extra[k] = NULL;
    }
    if (pr_start_node(&c->node[i], "cluster-node", extra) != 0) {
      if (++attempt < 5) { /* maybe the bus or TLS port was taken: others */
        i--;
        continue;
      }
      return -1;
    }
    c->node[i].bus = b;
    c->node[i].tls_port = tp;
  }
  for (int i = 0; i < c->n; i++)
    if (!pr_wait_ping(c->node[i].port, NULL, 5000)) return -1;
  char ports[PR_MAX][32], reps[8];
  const char *argv[PR_MAX + 8] = {"redis-cli", "--cluster", "create"};
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
  pid_t p = pr_spawn((char *const *)argv, c->node[0].dir, false);
  int st = 0;
  if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "redis-cli --cluster create failed (see %s/out.log)\n", c->node[0].dir);
    return -1;
  }
  for (int64_t until = pr_now_ms() + 15000; pr_now_ms() < until; pr_sleep_ms(50))
    if (pr_cluster_ok(c) && pr_replicas_synced(c)) return 0;
  fprintf(stderr, "private cluster did not reach cluster_state:ok\n");
  return -1;
}

PR_FN int pr_cluster_start(pr_cluster *c, int masters, int replicas, int node_timeout_ms) {
  return pr_cluster_start_tls(c, masters, replicas, node_timeout_ms, NULL);
}

/* "redis://127.0.0.1:<port of node i>" */
PR_FN void pr_cluster_url(const pr_cluster *c, int i, char *buf, size_t size, const char *q) {
  snprintf(buf, size, "redis://127.0.0.1:%d%s", c->node[i].port, q ? q : "");
}

/* Index of the node whose ROLE is master and serves `slot`, or -1. */
PR_FN int pr_cluster_owner(pr_cluster *c, unsigned slot) {
  for (int i = 0; i < c->n; i++) {
    if (c->node[i].pid <= 0) continue;
    redisReply *r = pr_cmd(c->node[i].port, "CLUSTER SLOTS");
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

/* The node's ROLE: 1 master, 0 replica, -1 unreachable. */
PR_FN int pr_role_master(int port, const char *password) {
  redisReply *r = pr_cmd_auth(port, password, "ROLE");
  int m = -1;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str)
    m = strcmp(r->element[0]->str, "master") == 0;
  if (r) freeReplyObject(r);
  return m;
}

#endif

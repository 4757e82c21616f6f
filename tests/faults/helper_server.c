/* SPDX-License-Identifier: BSD-3-Clause */
/* Real redis-server processes owned by PID: see helper_server.h. */
#include "helper_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

/* ---- the at-exit registry: every PID started, killed however the test ends ------------------- */

#define SRV_REG_MAX 32

static volatile pid_t reg_pid[SRV_REG_MAX];
static char reg_dir[SRV_REG_MAX][256];
static int reg_n;
static bool reg_installed;

/* Async-signal-safe: continue (a paused server cannot exit otherwise on SIGTERM; SIGKILL
 * works anyway, the SIGCONT is belt and braces), then kill. */
static void reg_kill_all(void) {
  for (int i = 0; i < reg_n; i++) {
    pid_t p = reg_pid[i];
    if (p > 0) {
      kill(p, SIGCONT);
      kill(p, SIGKILL);
    }
  }
}

void srv_remove_dir(const char *dir) {
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
  reg_kill_all();
  for (int i = 0; i < reg_n; i++) {
    if (reg_pid[i] > 0) waitpid(reg_pid[i], NULL, 0);
    reg_pid[i] = 0;
    if (reg_dir[i][0]) srv_remove_dir(reg_dir[i]);
  }
}

static void reg_on_signal(int sig) {
  reg_kill_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void reg_install(void) {
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

/* ---- ports, paths ---------------------------------------------------------------------------- */

/* A port in 20000-29999 that 127.0.0.1 can bind right now. */
static int free_port(void) {
  static unsigned seed;
  if (!seed) seed = (unsigned)getpid() ^ (unsigned)time(NULL);
  for (int tries = 0; tries < 500; tries++) {
    int port = 20000 + (int)(rand_r(&seed) % 10000);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    if (ok) return port;
  }
  return -1;
}

int srv_free_port(void) {
  return free_port();
}

/* The redis-server on PATH, resolved before fork (execvp may allocate in the child). */
static const char *redis_server_path(void) {
  static char found[512];
  if (found[0]) return found;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  const char *p = path;
  while (*p) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > 0 && n < sizeof found - 20) {
      snprintf(found, sizeof found, "%.*s/redis-server", (int)n, p);
      if (access(found, X_OK) == 0) return found;
    }
    p += n + (end ? 1 : 0);
  }
  found[0] = '\0';
  return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int srv_init(srv *s, const char *password, const char *const *extra) {
  memset(s, 0, sizeof *s);
  reg_install();
  if (reg_n >= SRV_REG_MAX) {
    fprintf(stderr, "srv: too many servers\n");
    return -1;
  }
  s->port = free_port();
  if (s->port < 0) {
    fprintf(stderr, "srv: no free port\n");
    return -1;
  }
  if (password) snprintf(s->password, sizeof s->password, "%s", password);
  for (; extra && *extra && s->nargs < SRV_MAX_ARGS; extra++)
    s->args[s->nargs++] = strdup(*extra);
  const char *base = getenv("RCACHE_TEST_RUN_DIR");
  snprintf(s->dir, sizeof s->dir, "%s/faults-srv-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(s->dir)) {
    fprintf(stderr, "srv: mkdtemp %s: %s\n", s->dir, strerror(errno));
    return -1;
  }
  s->slot = reg_n++;
  snprintf(reg_dir[s->slot], sizeof reg_dir[s->slot], "%s", s->dir);
  return 0;
}

static void print_log(const srv *s) {
  char path[512], line[512];
  snprintf(path, sizeof path, "%s/redis.log", s->dir);
  FILE *f = fopen(path, "r");
  if (!f) return;
  fprintf(stderr, "---- %s (port %d)\n", path, s->port);
  while (fgets(line, sizeof line, f))
    fputs(line, stderr);
  fclose(f);
}

/* PING answered: 1 PONG, 2 -LOADING, 0 not (yet). */
static int ping_state(const srv *s) {
  redisContext *c = srv_connect(s, 200);
  if (!c) return 0;
  int r = 0;
  redisReply *rep = redisCommand(c, "PING");
  if (rep && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "PONG"))
    r = 1;
  else if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "LOADING", 7))
    r = 2;
  if (rep) freeReplyObject(rep);
  redisFree(c);
  return r;
}

int srv_launch(srv *s, bool accept_loading) {
  const char *exe = redis_server_path();
  if (!exe) {
    fprintf(stderr, "srv: redis-server not found on PATH\n");
    return -1;
  }
  char port[16], logf[300], outf[300];
  snprintf(port, sizeof port, "%d", s->port);
  snprintf(logf, sizeof logf, "%s/redis.log", s->dir);
  snprintf(outf, sizeof outf, "%s/stdout.log", s->dir);
  char *argv[24 + SRV_MAX_ARGS];
  int n = 0;
  argv[n++] = (char *)"redis-server";
  argv[n++] = (char *)"--bind";
  argv[n++] = (char *)"127.0.0.1";
  argv[n++] = (char *)"--port";
  argv[n++] = port;
  argv[n++] = (char *)"--save";
  argv[n++] = (char *)"";
  argv[n++] = (char *)"--appendonly";
  argv[n++] = (char *)"no";
  argv[n++] = (char *)"--daemonize";
  argv[n++] = (char *)"no";
  argv[n++] = (char *)"--dir";
  argv[n++] = s->dir;
  argv[n++] = (char *)"--logfile";
  argv[n++] = logf;
  if (s->password[0]) {
    argv[n++] = (char *)"--requirepass";
    argv[n++] = s->password;
  }
  for (int i = 0; i < s->nargs; i++)
    argv[n++] = s->args[i];
  argv[n] = NULL;

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "srv: fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    /* Only async-signal-safe calls here: the test process has threads. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int out = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = open("/dev/null", O_RDONLY);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    if (in >= 0) dup2(in, 0);
      /* The test's sockets (rcache's connections, the proxy's listener) must not live on in
       * the server: a copy here would keep them open after the test closes them. */
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
      for (int fd = 3; fd < 65536; fd++)
        close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(exe, argv);
    _exit(127);
  }
  s->pid = pid;
  s->paused = false;
  reg_pid[s->slot] = pid;
  for (int i = 0; i < 250; i++) { /* 5 s */
    int st = ping_state(s);
    if (st == 1 || (st == 2 && accept_loading)) return 0;
    int ws;
    if (waitpid(pid, &ws, WNOHANG) == pid) {
      s->pid = 0;
      reg_pid[s->slot] = 0;
      fprintf(stderr, "srv: redis-server on port %d exited during start\n", s->port);
      print_log(s);
      return -1;
    }
    usleep(20 * 1000);
  }
  fprintf(stderr, "srv: redis-server on port %d did not answer PING within 5 s\n", s->port);
  print_log(s);
  srv_kill(s);
  return -1;
}

int srv_start(srv *s, const char *password, const char *const *extra) {
  for (int tries = 0; tries < 5; tries++) {
    if (srv_init(s, password, extra) != 0) return -1;
    if (srv_launch(s, false) == 0) return 0;
    srv_destroy(s); /* probably a port taken between the check and the bind: try another */
  }
  return -1;
}

void srv_kill(srv *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGKILL);
  kill(s->pid, SIGCONT);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
  s->paused = false;
  reg_pid[s->slot] = 0;
}

void srv_pause(srv *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGSTOP);
  s->paused = true;
}

void srv_resume(srv *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGCONT);
  s->paused = false;
}

int srv_restart(srv *s, bool accept_loading) {
  srv_kill(s);
  return srv_launch(s, accept_loading);
}

void srv_destroy(srv *s) {
  srv_kill(s);
  for (int i = 0; i < s->nargs; i++)
    free(s->args[i]);
  s->nargs = 0;
  if (s->dir[0]) {
    srv_remove_dir(s->dir);
    reg_dir[s->slot][0] = '\0';
    s->dir[0] = '\0';
  }
}

/* ---- talking to it --------------------------------------------------------------------------- */

void srv_url(const srv *s, char *buf, size_t size, const char *query) {
  const char *q = query && *query ? query : "";
  if (s->password[0]) {
    snprintf(buf, size, "redis://:%s@127.0.0.1:%d%s", s->password, s->port, q);
  } else {
    snprintf(buf, size, "redis://127.0.0.1:%d%s", s->port, q);
  }
}

redisContext *srv_connect(const srv *s, int timeout_ms) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
  if (!c) return NULL;
  if (c->err) {
    redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  if (s->password[0]) {
    redisReply *r = redisCommand(c, "AUTH %s", s->password);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    if (!ok) {
      redisFree(c);
      return NULL;
    }
  }
  return c;
}

static redisReply *vcommand(const srv *s, const char *fmt, va_list ap) {
  redisContext *c = srv_connect(s, 2000);
  if (!c) return NULL;
  redisReply *r = redisvCommand(c, fmt, ap);
  redisFree(c);
  return r;
}

redisReply *srv_command(const srv *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcommand(s, fmt, ap);
  va_end(ap);
  return r;
}

bool srv_do(const srv *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcommand(s, fmt, ap);
  va_end(ap);
  bool ok = r && r->type != REDIS_REPLY_ERROR;
  if (!ok) {
    fprintf(stderr, "srv: port %d: \"%s\" failed: %s\n", s->port, fmt, r ? r->str : "no reply");
  }
  if (r) freeReplyObject(r);
  return ok;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private redis-server processes for the C tests and the bench: the one way a test starts,
 * pauses, kills and restarts a server of its own (scripts/servers.sh starts the shared
 * servers of a `make test` run; this is for servers a test disturbs).
 *
 * Each server is started with posix_spawn (never fork(): see spawn() in redis_proc.c; never
 * daemonized) from the PATH's redis-server, binds 127.0.0.1 only (or a Unix socket in its
 * own directory), on a free port picked here (20000-29999, checked by binding it, never
 * handed out twice by one process) unless the test fixes one, with persistence off. It is
 * ready when it answers PING (a TLS-only server: when its TLS port accepts connections),
 * within a bounded wait.
 *
 * Only processes started here are ever signalled, by PID. Every one is recorded and killed
 * however the test ends: an atexit handler, handlers for fatal signals (SIGABRT from a
 * sanitizer, SIGTERM from CTest, SIGINT, SIGHUP, SIGQUIT) and, as a last resort,
 * PR_SET_PDEATHSIG (set by util-linux' setpriv, which then execs the server). A paused
 * (SIGSTOP) server is continued before it is killed. A child process the test forks
 * inherits those handlers but never kills its parent's servers; the servers it starts
 * itself are its own. Server directories (logs, nodes.conf, sentinel.conf) go under
 * $RCACHE_TEST_RUN_DIR (or /tmp) and are removed at exit unless RCACHE_TEST_KEEP is set.
 *
 * Call the start/stop functions from the main thread only (the parent-death signal is
 * tied to the thread that started the server). Talking to a server (rp_command, rp_cmd...)
 * is safe from any thread.
 */
#ifndef RCACHE_TEST_REDIS_PROC_H
#define RCACHE_TEST_REDIS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#define RP_MAX_ARGS 64
/* rp_opts.port: no TCP listener (a Unix socket or TLS port only) */
#define RP_NO_TCP (-1)

/* How to start a server. Zeroed (or a NULL pointer) means: a free TCP port, no password,
 * no extra arguments. */
typedef struct rp_opts {
  const char *tag;         /* directory name prefix; NULL = "redis" */
  const char *password;    /* requirepass (and masterauth, for a replica); NULL = none */
  const char *const *args; /* more redis-server arguments, NULL-terminated; may be NULL */
  int port;                /* 0: a free port; > 0: this one (kept across restarts anyway);
                            * RP_NO_TCP: none */
  bool unix_socket;        /* also listen on <dir>/redis.sock (mode 700) */
  const char *tls_dir;     /* a directory with server.pem, server.key, ca.pem: a TLS port too
                            * (clients not verified); NULL = no TLS */
  bool sentinel;           /* run as a sentinel on <dir>/sentinel.conf */
  const char *conf;        /* text of the config file (e.g. "sentinel monitor ..." lines); with
                            * sentinel it is sentinel.conf, which the sentinel rewrites */
} rp_opts;

typedef struct rp_server {
  int port;          /* TCP port on 127.0.0.1; 0 when none */
  int tls_port;      /* 0 without TLS */
  int bus;           /* cluster bus port (rp_cluster_start), else 0 */
  char sock[108];    /* Unix socket path; "" when none */
  pid_t pid;         /* 0 when not running */
  bool paused;       /* SIGSTOPped by rp_pause */
  char dir[256];     /* working directory: redis.log, out.log, dump.rdb... */
  char password[64]; /* requirepass; "" = none */
  /* the command line after argv[0]: nargs strings at argoff[i] in argbuf (no heap: a
   * server the test never destroys leaks nothing, and the struct may be copied) */
  char argbuf[4096];
  size_t argused;
  int argoff[RP_MAX_ARGS];
  int nargs;
  int slot; /* index in the kill-at-exit registry */
} rp_server;

/* Prepares *s without starting it: picks the port(s) and makes a fresh directory (o may be
 * NULL). Nothing listens until rp_launch. Returns 0, or -1 (the reason is printed). */
int rp_init(rp_server *s, const rp_opts *o);

/* Starts the server prepared by rp_init and waits (up to 5 s) until it is ready (with
 * accept_loading, a -LOADING answer to PING counts too). Returns 0, or -1 (its log is
 * printed and nothing is left running). */
int rp_launch(rp_server *s, bool accept_loading);

/* rp_init + rp_launch; when the port was picked here and the server could not bind it
 * (taken between the check and the bind), tries again on another, up to 5 times. */
int rp_start(rp_server *s, const rp_opts *o);

/* SIGKILL, and reap. No-op when not running. */
void rp_kill(rp_server *s);
/* SIGTERM (a paused server is continued first), up to 5 s for it to exit, then SIGKILL.
 * Returns 0 when it exited by itself. */
int rp_stop(rp_server *s);
/* SIGSTOP / SIGCONT. */
void rp_pause(rp_server *s);
void rp_resume(rp_server *s);
/* rp_kill + rp_launch on the same port(s) and directory (so an RDB or nodes.conf there
 * is loaded). */
int rp_restart(rp_server *s, bool accept_loading);
/* Kills it, removes its directory and frees its registry slot. */
void rp_destroy(rp_server *s);

/* A port in 20000-29999 that 127.0.0.1 can bind right now and that this process was not
 * given before (for a second listener, or an address where nothing listens). -1 when none
 * was found. */
int rp_free_port(void);
/* A fresh directory <base>/<tag>-XXXXXX, base being $RCACHE_TEST_RUN_DIR or /tmp. */
int rp_mkdir(char *dir, size_t size, const char *tag);
/* Removes a directory made by rp_mkdir (flat: its files, then itself). */
void rp_remove_dir(const char *dir);

/* "redis://:password@127.0.0.1:port<query>" (without the password when there is none);
 * "unix://[:password@]<sock><query>" for a server without a TCP port. */
void rp_url(const rp_server *s, char *buf, size_t size, const char *query);

/* A fresh raw hiredis connection (TCP, else the Unix socket; AUTH done when the server has
 * a password), with connect and command timeouts of timeout_ms. NULL on failure. Free
 * with redisFree. */
redisContext *rp_connect(const rp_server *s, int timeout_ms);
/* One command on a fresh connection; the reply (free with freeReplyObject), or NULL when
 * the server could not be reached (2 s timeouts). */
redisReply *rp_command(const rp_server *s, const char *fmt, ...);
/* One command; true when it got a non-error reply. Prints the error otherwise. */
bool rp_do(const rp_server *s, const char *fmt, ...);

/* One command on a fresh connection to 127.0.0.1:port (any server, the shared ones too),
 * with 1 s timeouts; rp_cmd_auth sends AUTH password first. NULL when unreachable. */
redisReply *rp_cmd(int port, const char *fmt, ...);
redisReply *rp_cmd_auth(int port, const char *password, const char *fmt, ...);
/* True when r is a string/status reply containing needle. Frees r. */
bool rp_reply_has(redisReply *r, const char *needle);
/* True when r is a reply and not an error (the error is printed). Frees r. */
bool rp_ok(redisReply *r);
/* ROLE of 127.0.0.1:port: 1 master, 0 replica, -1 unreachable. */
int rp_role_master(int port, const char *password);

int64_t rp_now_ms(void); /* CLOCK_MONOTONIC */
void rp_sleep_ms(int ms);

/* ---- a private cluster ----------------------------------------------------------------------- */

#define RP_CLUSTER_MAX 12

typedef struct rp_cluster {
  rp_server node[RP_CLUSTER_MAX];
  int n, masters;
} rp_cluster;

/* masters + masters x replicas nodes, created with redis-cli --cluster create, waited for
 * until every node says cluster_state:ok, knows every other node and every replica has
 * synced (up to 15 s). Nodes keep serving while a master is down
 * (cluster-require-full-coverage no). With tls_dir, each node also has a TLS port and the
 * cluster bus and replication run over TLS; the plain ports stay for the test's own
 * commands. Returns 0 or -1. */
int rp_cluster_start(rp_cluster *c, int masters, int replicas, int node_timeout_ms,
                     const char *tls_dir);
/* One more master, without slots (CLUSTER MEET), waited for until every node knows it
 * (up to 15 s). Returns its index, or -1. */
int rp_cluster_add_master(rp_cluster *c, int node_timeout_ms, const char *tls_dir);
/* "redis://127.0.0.1:<port of node i><query>" */
void rp_cluster_url(const rp_cluster *c, int i, char *buf, size_t size, const char *query);
/* Index of the running node that serves slot as a master, or -1. */
int rp_cluster_owner(rp_cluster *c, unsigned slot);
/* The cluster node id (CLUSTER MYID) of the node on port into id; false when not answered. */
bool rp_node_id(int port, char *id, size_t size);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Real redis-server processes for the fault tests, owned by PID.
 *
 * Each server is fork+exec'd (never daemonized) from the PATH's redis-server, binds
 * 127.0.0.1 only, on a free port picked here (20000-29999, checked by binding it), with
 * persistence off unless a test asks for it. Every server started is recorded and killed
 * at exit: an atexit handler, handlers for fatal signals (SIGABRT from a sanitizer,
 * SIGSEGV, SIGTERM from CTest...) and, as a last resort, PR_SET_PDEATHSIG in the child.
 * A paused (SIGSTOP) server is continued before it is killed.
 *
 * Call these from the main thread only (the parent-death signal is tied to the thread
 * that forked).
 */
#ifndef RCACHE_FAULTS_HELPER_SERVER_H
#define RCACHE_FAULTS_HELPER_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#define SRV_MAX_ARGS 32

typedef struct srv {
  int port;
  pid_t pid; /* 0 when not running */
  bool paused;
  char dir[256];            /* working directory: redis.log, dump.rdb */
  char password[64];        /* requirepass; "" = none */
  char *args[SRV_MAX_ARGS]; /* extra redis-server arguments (owned) */
  int nargs;
  int slot; /* index in the at-exit registry */
} srv;

/* Prepares *s without starting it: picks a free port and a fresh directory. `password`
 * may be NULL; `extra` is a NULL-terminated list of extra redis-server arguments (may be
 * NULL), e.g. {"--maxmemory-policy", "noeviction", NULL}. Returns 0 or -1. */
int srv_init(srv *s, const char *password, const char *const *extra);

/* Starts the server on s->port and waits (up to 5 s) until it answers PING with PONG
 * (or, when accept_loading, with -LOADING). Returns 0, or -1 (the log is printed). */
int srv_launch(srv *s, bool accept_loading);

/* srv_init + srv_launch, retrying on another port when the chosen one was taken. */
int srv_start(srv *s, const char *password, const char *const *extra);

/* SIGKILL, and reap. No-op when not running. */
void srv_kill(srv *s);
/* SIGSTOP / SIGCONT. */
void srv_pause(srv *s);
void srv_resume(srv *s);
/* srv_kill + srv_launch on the same port (and directory, so an RDB there is loaded). */
int srv_restart(srv *s, bool accept_loading);
/* Kills it and frees the argument copies; removes the directory. */
void srv_destroy(srv *s);

/* A port in 20000-29999 that 127.0.0.1 can bind right now (for a server's second
 * listener, e.g. --tls-port). -1 when none was found. */
int srv_free_port(void);

/* Removes a server directory (flat: its files, then itself). */
void srv_remove_dir(const char *dir);

/* "redis://:password@127.0.0.1:port" (or without the password) into buf. */
void srv_url(const srv *s, char *buf, size_t size, const char *query);

/* A fresh raw hiredis connection (AUTH done when the server has a password), with both
 * connect and command timeouts of timeout_ms. NULL on failure. Free with redisFree. */
redisContext *srv_connect(const srv *s, int timeout_ms);

/* Runs one command on a fresh connection; returns the reply (free with freeReplyObject)
 * or NULL when the server could not be reached. */
redisReply *srv_command(const srv *s, const char *fmt, ...);

/* Runs one command; true when it got a non-error reply. Prints the error otherwise. */
bool srv_do(const srv *s, const char *fmt, ...);

#endif

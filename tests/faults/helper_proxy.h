/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A loopback TCP proxy for the fault tests: 127.0.0.1:<free port> → 127.0.0.1:<target>,
 * one thread, non-blocking sockets, switchable at run time:
 *   PROXY_PASS       forwards both ways.
 *   PROXY_BLACKHOLE  accepts connections but forwards nothing in either direction and
 *                    keeps every socket open (what a dead route or a stalled peer looks
 *                    like to a client). Data already read is held, not lost: when the mode
 *                    goes back to PASS, forwarding resumes where it stopped, as TCP would
 *                    after a transient partition.
 *   PROXY_HALF       forwards half of the next server→client chunk of each connection,
 *                    then closes both sides of that connection.
 *   PROXY_DELAY      holds every server→client chunk for delay_ms before forwarding it.
 *   PROXY_FLAKY      forwards each connection's first server→client chunk (the replies to
 *                    the connection's set-up), then, counting over all connections, every
 *                    other chunk: the rest are dropped and their connection is closed. One
 *                    client doing one command at a time sees success, failure, success...
 */
#ifndef RCACHE_FAULTS_HELPER_PROXY_H
#define RCACHE_FAULTS_HELPER_PROXY_H

#include <stddef.h>
#include <stdint.h>

typedef enum proxy_mode {
  PROXY_PASS = 0,
  PROXY_BLACKHOLE,
  PROXY_HALF,
  PROXY_DELAY,
  PROXY_FLAKY
} proxy_mode;

typedef struct proxy proxy;

/* Starts a proxy to 127.0.0.1:target_port. NULL on failure. */
proxy *proxy_start(int target_port);
/* The port it listens on (127.0.0.1). */
int proxy_port(const proxy *p);
/* Switches the mode; delay_ms is used by PROXY_DELAY. Takes effect within a poll round. */
void proxy_set_mode(proxy *p, proxy_mode m, int delay_ms);
/* Counters: connections accepted, connections cut by PROXY_HALF / PROXY_FLAKY, bytes
 * server→client. */
uint64_t proxy_accepted(const proxy *p);
uint64_t proxy_cut(const proxy *p);
uint64_t proxy_bytes_down(const proxy *p);
/* How long the proxy's thread has waited for a CPU, in all (cpu_wait.h), as of its last
 * wake-up: the part of a call's time that the machine, not the proxy, took. */
int64_t proxy_cpu_wait_us(const proxy *p);
/* Connections open right now. */
int proxy_open_pairs(const proxy *p);
/* Bytes from the "server" that nobody asked for, as a broken server, a middlebox or a
 * connection out of step would deliver them (at most 256 bytes, one injection pending at
 * a time): PROXY_INJECT_NOW to every open connection at once; PROXY_INJECT_BEFORE /
 * PROXY_INJECT_AFTER glued to the next server→client chunk (in the same write) of
 * whichever connection gets one first. */
typedef enum proxy_inject_when {
  PROXY_INJECT_NOW = 0,
  PROXY_INJECT_BEFORE,
  PROXY_INJECT_AFTER
} proxy_inject_when;
void proxy_inject(proxy *p, const char *data, size_t len, proxy_inject_when when);
/* Injections delivered so far. */
uint64_t proxy_injected(const proxy *p);

/* Stops the thread, closes every socket, frees. NULL-safe. */
void proxy_stop(proxy *p);

#endif

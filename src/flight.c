/* SPDX-License-Identifier: BSD-3-Clause */
/* Single-flight table. It is touched only on cache misses, so one mutex for the table is
 * cheap next to the load it saves; each flight has its own condition variable. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flight.h"

#define NBUCKETS 256

struct rcache__flight {
  rcache__flight *next;
  char *key;
  size_t klen;
  uint64_t hash;
  uint64_t epoch; /* the invalidation epoch its creator read (flight.h) */
  int refs;       /* guarded by the table mutex */
  bool done;      /* guarded by the table mutex */
  bool in_table;
  rcache_status status;
  rcache_value value;
  pthread_cond_t cond;
};

struct rcache__flights {
  pthread_mutex_t mu;
  rcache__flight *bucket[NBUCKETS];
  struct {
    uint64_t hash;
    uint64_t epoch;
    int64_t done_us;
  } recent[NBUCKETS]; /* the last successful flight per bucket */
};

static uint64_t fnv1a(const char *k, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
  return h;
}

rcache__flights *rcache__flights_new(void) {
  rcache__flights *fs = rcache__calloc(1, sizeof *fs);
  if (fs) pthread_mutex_init(&fs->mu, NULL);
  return fs;
}

void rcache__flights_free(rcache__flights *fs) {
  if (!fs) return;
  pthread_mutex_destroy(&fs->mu);
  rcache__free(fs);
}

void rcache__flights_after_fork(rcache__flights *fs) {
  pthread_mutex_init(&fs->mu, NULL);
  memset(fs->bucket, 0, sizeof fs->bucket);
}

static rcache__flight *flight_new(const char *key, size_t klen, uint64_t h) {
  rcache__flight *f = rcache__calloc(1, sizeof *f);
  if (!f) return NULL;
  f->key = rcache__memdup0(key, klen);
  if (!f->key) {
    rcache__free(f);
    return NULL;
  }
  rcache__cond_init_mono(&f->cond);
  f->klen = klen;
  f->hash = h;
  return f;
}

static void flight_free(rcache__flight *f) {
  pthread_cond_destroy(&f->cond);
  rcache_value_free(&f->value);
  rcache__free(f->key);
  rcache__free(f);
}

static void unlink_flight(rcache__flights *fs, rcache__flight *f);

rcache__flight *rcache__flight_join(rcache__flights *fs, const char *key, size_t klen,
                                    uint64_t epoch, bool *leader) {
  uint64_t h = fnv1a(key, klen);
  rcache__flight **slot = &fs->bucket[h % NBUCKETS];
  pthread_mutex_lock(&fs->mu);
  for (rcache__flight *f = *slot; f; f = f->next) {
    if (f->hash == h && f->klen == klen && memcmp(f->key, key, klen) == 0) {
      if (f->epoch < epoch) { /* overtaken by an invalidation: a new flight replaces it */
        unlink_flight(fs, f);
        break;
      }
      f->refs++;
      pthread_mutex_unlock(&fs->mu);
      *leader = false;
      return f;
    }
  }
  rcache__flight *f = flight_new(key, klen, h);
  if (f) {
    f->epoch = epoch;
    f->refs = 1;
    f->in_table = true;
    f->next = *slot;
    *slot = f;
  }
  pthread_mutex_unlock(&fs->mu);
  *leader = true;
  return f;
}

static void unlink_flight(rcache__flights *fs, rcache__flight *f) {
  if (!f->in_table) return;
  for (rcache__flight **p = &fs->bucket[f->hash % NBUCKETS]; *p; p = &(*p)->next) {
    if (*p == f) {
      *p = f->next;
      break;
    }
  }
  f->in_table = false;
}

void rcache__flight_finish(rcache__flights *fs, rcache__flight *f, rcache_status st,
                           const rcache_value *v) {
  rcache_value copy = {NULL, 0};
  if (st == RCACHE_OK && v) {
    copy.data = rcache__memdup0(v->data, v->len);
    copy.len = v->len;
    if (!copy.data) st = RCACHE_ENOMEM;
  }
  pthread_mutex_lock(&fs->mu);
  f->status = st;
  f->value = copy;
  f->done = true;
  if (st == RCACHE_OK) {
    fs->recent[f->hash % NBUCKETS].hash = f->hash;
    fs->recent[f->hash % NBUCKETS].epoch = f->epoch;
    fs->recent[f->hash % NBUCKETS].done_us = rcache__now_us();
  }
  unlink_flight(fs, f);
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&fs->mu);
}

rcache_status rcache__flight_wait(rcache__flights *fs, rcache__flight *f, int64_t deadline_us,
                                  rcache_value *out) {
  struct timespec ts;
  rcache__deadline_ts(&ts, deadline_us);
  rcache_status st = RCACHE_ETIMEOUT;
  pthread_mutex_lock(&fs->mu);
  while (!f->done) {
    if (rcache__cond_timedwait(&f->cond, &fs->mu, &ts) == ETIMEDOUT) break;
  }
  if (f->done) {
    st = f->status;
    if (st == RCACHE_OK) {
      out->data = rcache__memdup0(f->value.data, f->value.len);
      out->len = f->value.len;
      if (!out->data) {
        out->len = 0;
        st = RCACHE_ENOMEM;
      }
    }
  }
  pthread_mutex_unlock(&fs->mu);
  return st;
}

void rcache__flight_leave(rcache__flights *fs, rcache__flight *f) {
  pthread_mutex_lock(&fs->mu);
  bool last = --f->refs == 0;
  if (last) unlink_flight(fs, f); /* a leader that never finished (ENOMEM paths) */
  pthread_mutex_unlock(&fs->mu);
  if (last) flight_free(f);
}

bool rcache__flight_done_since(rcache__flights *fs, const char *key, size_t klen, int64_t since_us,
                               uint64_t epoch) {
  uint64_t h = fnv1a(key, klen);
  pthread_mutex_lock(&fs->mu);
  bool late = fs->recent[h % NBUCKETS].hash == h && fs->recent[h % NBUCKETS].done_us >= since_us &&
              fs->recent[h % NBUCKETS].epoch >= epoch;
  pthread_mutex_unlock(&fs->mu);
  return late;
}

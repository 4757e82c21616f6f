/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tags: invalidating related entries in O(1) (docs/semantics.md, "Tags").
 *
 * Each tag has a version key, <key_prefix>__rc:tag:<tag>, and the handle's prefix one more,
 * <key_prefix>__rc:clear. A tagged value is stored framed: a header holding the versions its
 * tags (and the clear key) had when it was written, then the payload. Invalidating a tag is
 * one INCR of its version key; a read compares the stored versions with the current ones and
 * treats a mismatch as a miss (and unlinks the stale entry). Version keys are created with a
 * random start (SET NX), so a version key that disappears (eviction, delete) never makes old
 * values valid again: absent never equals a stored version.
 *
 * Frame: "\xffRC\x01" | u8 n | u64 clear version | n × (u16 len | tag | u64 version) | payload
 * (integers big-endian).
 */
#include <stdio.h>
#include <string.h>

#include "handle.h"
#include "near.h"
#include "tags.h"

#define MAGIC "\xffRC\x01"
#define MAGIC_LEN 4
#define TAG_KEY "__rc:tag:"
#define CLEAR_KEY "__rc:clear"

struct rcache_tags { /* the loader's sink (rcache_tags_add) */
  char *tag[RCACHE_TAGS_MAX];
  size_t n;
  rcache_status err; /* the first failure of rcache_tags_add */
};

/* ---- the frame: pure --------------------------------------------------------------------- */

typedef struct frame {
  size_t n;                         /* tags */
  const char *tag[RCACHE_TAGS_MAX]; /* into the value */
  size_t tlen[RCACHE_TAGS_MAX];     /* tag lengths */
  int64_t ver[RCACHE_TAGS_MAX + 1]; /* [0] = clear version, then each tag's */
  size_t head;                      /* header bytes before the payload */
} frame;

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

bool rcache__tags_framed(const char *d, size_t len) {
  return len >= MAGIC_LEN && memcmp(d, MAGIC, MAGIC_LEN) == 0;
}

/* false when the bytes are not a whole, valid header */
static bool frame_parse(const char *d, size_t len, frame *f) {
  const unsigned char *p = (const unsigned char *)d;
  size_t at = MAGIC_LEN;
  if (!rcache__tags_framed(d, len) || len < at + 9) return false;
  f->n = p[at++];
  if (f->n > RCACHE_TAGS_MAX) return false;
  f->ver[0] = (int64_t)get_u64(p + at);
  at += 8;
  for (size_t i = 0; i < f->n; i++) {
    if (len - at < 2) return false;
    size_t tl = ((size_t)p[at] << 8) | p[at + 1];
    at += 2;
    if (tl == 0 || len - at < tl + 8) return false;
    f->tag[i] = d + at;
    f->tlen[i] = tl;
    f->ver[i + 1] = (int64_t)get_u64(p + at + tl);
    at += tl + 8;
  }
  f->head = at;
  return true;
}

/* ---- version keys -------------------------------------------------------------------------- */

/* The prefixed version key of a tag (tl bytes, no NUL inside), or of the clear key when
 * tag is NULL. */
static rcache_status version_key(rcache *c, const char *tag, size_t tl, rcache__key *k) {
  if (!tag) return rcache__key_make(c, CLEAR_KEY, k);
  size_t n = sizeof TAG_KEY - 1 + tl;
  char stack[256], *name = n < sizeof stack ? stack : rcache__malloc(n + 1);
  if (!name) return RCACHE_ENOMEM;
  memcpy(name, TAG_KEY, sizeof TAG_KEY - 1);
  memcpy(name + sizeof TAG_KEY - 1, tag, tl);
  name[n] = '\0';
  rcache_status s = rcache__key_make(c, name, k);
  if (name != stack) rcache__free(name);
  return s;
}

typedef struct vkeys {
  size_t n; /* keys: [0] clear, then tags */
  rcache__key k[RCACHE_TAGS_MAX + 1];
  const char *p[RCACHE_TAGS_MAX + 1];
  size_t len[RCACHE_TAGS_MAX + 1];
} vkeys;

static void vkeys_free(vkeys *v) {
  for (size_t i = 0; i < v->n; i++)
    rcache__key_free(&v->k[i]);
  v->n = 0;
}

static rcache_status vkeys_make(rcache *c, const char *const *tag, const size_t *tlen, size_t n,
                                vkeys *v) {
  v->n = 0;
  for (size_t i = 0; i <= n; i++) {
    rcache_status s = version_key(c, i ? tag[i - 1] : NULL, i ? tlen[i - 1] : 0, &v->k[i]);
    if (s != RCACHE_OK) {
      vkeys_free(v);
      return s;
    }
    v->p[i] = v->k[i].p;
    v->len[i] = v->k[i].len;
    v->n = i + 1;
  }
  return RCACHE_OK;
}

/* With the near cache: the versions from it, each version key fetched through it (and so
 * tracked) when absent there. Tracking keeps them as coherent as any near-cached key; this
 * process's own invalidations drop them at once (bump). A hit costs no round trip. */
static rcache_status near_versions(rcache *c, const vkeys *v, int64_t *ver) {
  for (size_t i = 0; i < v->n; i++) {
    rcache_value val;
    bool hit;
    rcache_status s = rcache__get_stored(c, &v->k[i], &val, NULL, NULL, NULL, &hit);
    ver[i] = 0;
    if (s == RCACHE_OK) {
      bool ok = rcache__parse_i64(val.data, val.len, &ver[i]) && ver[i] != 0;
      rcache_value_free(&val);
      if (!ok)
        return rcache__errf("tag version key holds a value that is not a version"), RCACHE_ETYPE;
    } else if (s != RCACHE_MISS) {
      return s;
    }
  }
  return RCACHE_OK;
}

/* Reads the current versions (one MGET). An absent key reads as 0 (no stored version is 0);
 * with create, absent keys are first created with a random start and read again. */
static rcache_status read_versions(rcache *c, const vkeys *v, int64_t *ver, bool create) {
  if (c->ctx.near && !create) return near_versions(c, v, ver);
  rcache__backend *be = rcache__be(c);
  for (int round = 0; round < 2; round++) {
    rcache_value vals[RCACHE_TAGS_MAX + 1];
    rcache_status st[RCACHE_TAGS_MAX + 1];
    for (size_t i = 0; i < v->n; i++) {
      vals[i] = (rcache_value){NULL, 0};
      st[i] = RCACHE_MISS;
    }
    rcache_status s = be->ops->get_many(be, v->p, v->len, v->n, vals, st);
    if (s != RCACHE_OK) { /* statuses and values are not filled in then */
      for (size_t i = 0; i < v->n; i++)
        st[i] = RCACHE_MISS;
    }
    bool absent = false;
    for (size_t i = 0; i < v->n; i++) {
      if (s == RCACHE_OK && st[i] != RCACHE_OK && st[i] != RCACHE_MISS) s = st[i];
      ver[i] = 0;
      if (s == RCACHE_OK && st[i] == RCACHE_OK &&
          (!rcache__parse_i64(vals[i].data, vals[i].len, &ver[i]) || ver[i] == 0)) {
        rcache__errf("tag version key holds a value that is not a version");
        s = RCACHE_ETYPE;
      }
      absent |= s == RCACHE_OK && st[i] == RCACHE_MISS;
      if (st[i] == RCACHE_OK) rcache_value_free(&vals[i]);
      vals[i] = (rcache_value){NULL, 0};
    }
    if (s != RCACHE_OK || !absent || !create || round == 1) return s;
    for (size_t i = 0; i < v->n; i++) {
      if (ver[i] != 0) continue;
      char num[24];
      int nl = snprintf(num, sizeof num, "%lld", (long long)(1 + rcache__rand01() * 4e15));
      s = be->ops->set(be, v->p[i], v->len[i], num, (size_t)nl, 0, RCACHE__SET_NX);
      if (s != RCACHE_OK && s != RCACHE_MISS) return s; /* MISS: another writer created it */
    }
  }
  return RCACHE_OK;
}

/* ---- reading --------------------------------------------------------------------------------- */

/* The entry key (klen bytes) is stale: unlink it so its memory goes now, not at expiry. Racing
 * a fresh write, this may drop the fresh value too: a later miss, never a stale hit. */
static void cleanup(rcache *c, const char *key, size_t klen) {
  rcache__backend *be = rcache__be(c);
  (void)be->ops->del(be, key, klen);
  if (c->ctx.near) rcache__near_invalidate(c->ctx.near, key, klen);
}

void rcache__tags_strip(rcache_value *v) {
  frame f;
  if (!v->data || !frame_parse(v->data, v->len, &f)) return;
  memmove(v->data, v->data + f.head, v->len - f.head + 1); /* with the NUL */
  v->len -= f.head;
}

rcache_status rcache__tags_unwrap(rcache *c, const char *key, size_t klen, rcache_value *v) {
  if (!v->data || !rcache__tags_framed(v->data, v->len)) return RCACHE_OK;
  frame f;
  vkeys vk;
  int64_t cur[RCACHE_TAGS_MAX + 1];
  rcache_status s = RCACHE_EDECODE;
  if (!frame_parse(v->data, v->len, &f))
    rcache__errf("a tagged value's header is malformed");
  else if ((s = vkeys_make(c, f.tag, f.tlen, f.n, &vk)) == RCACHE_OK) {
    s = read_versions(c, &vk, cur, false);
    vkeys_free(&vk);
  }
  for (size_t i = 0; s == RCACHE_OK && i <= f.n; i++)
    if (cur[i] != f.ver[i]) s = RCACHE_MISS;
  if (s == RCACHE_OK) {
    rcache__tags_strip(v);
    return RCACHE_OK;
  }
  rcache_value_free(v);
  if (s == RCACHE_MISS) cleanup(c, key, klen);
  return s;
}

/* ---- writing --------------------------------------------------------------------------------- */

static rcache_status check_tags(const char *const *tags, size_t ntags, size_t *tlen) {
  if (ntags > 0 && !tags) return rcache__errf("invalid argument: tags is NULL"), RCACHE_EINVAL;
  if (ntags > RCACHE_TAGS_MAX) {
    rcache__errf("%zu tags: at most %d per entry", ntags, RCACHE_TAGS_MAX);
    return RCACHE_ETOOBIG;
  }
  for (size_t i = 0; i < ntags; i++) {
    if (!tags[i] || !tags[i][0]) return rcache__errf("invalid argument: empty tag"), RCACHE_EINVAL;
    if ((tlen[i] = strlen(tags[i])) > UINT16_MAX) {
      rcache__errf("tag of %zu bytes is too long", tlen[i]);
      return RCACHE_ETOOBIG;
    }
  }
  return RCACHE_OK;
}

/* The frame's header for tags with versions ver ([0] = clear): malloc'd, *hl bytes. */
static char *frame_build(const char *const *tags, const size_t *tlen, size_t n, const int64_t *ver,
                         size_t *hl) {
  size_t len = MAGIC_LEN + 1 + 8;
  for (size_t i = 0; i < n; i++)
    len += 2 + tlen[i] + 8;
  unsigned char *h = rcache__malloc(len), *p = h;
  if (!h) return NULL;
  memcpy(p, MAGIC, MAGIC_LEN);
  p += MAGIC_LEN;
  *p++ = (unsigned char)n;
  put_u64(p, (uint64_t)ver[0]);
  p += 8;
  for (size_t i = 0; i < n; i++) {
    *p++ = (unsigned char)(tlen[i] >> 8);
    *p++ = (unsigned char)(tlen[i] & 0xff);
    memcpy(p, tags[i], tlen[i]);
    put_u64(p + tlen[i], (uint64_t)ver[i + 1]);
    p += tlen[i] + 8;
  }
  *hl = len;
  return (char *)h;
}

/* Reads (creating) the versions of tags now: what a value about to be loaded is stamped with. */
static rcache_status stamp(rcache *c, const char *const *tags, const size_t *tlen, size_t n,
                           int64_t *ver) {
  vkeys vk;
  rcache_status s = vkeys_make(c, tags, tlen, n, &vk);
  if (s != RCACHE_OK) return s;
  s = read_versions(c, &vk, ver, true);
  vkeys_free(&vk);
  for (size_t i = 0; s == RCACHE_OK && i <= n; i++) /* still absent (none://, evicted): stale */
    if (ver[i] == 0) ver[i] = INT64_MIN;
  return s;
}

/* *out = header + data (malloc'd, NUL-terminated). */
static rcache_status frame_value(const char *const *tags, const size_t *tlen, size_t n,
                                 const int64_t *ver, const void *data, size_t len,
                                 rcache_value *out) {
  size_t hl;
  char *h = frame_build(tags, tlen, n, ver, &hl);
  char *d = h && hl + len + 1 > hl ? rcache__malloc(hl + len + 1) : NULL;
  if (!d) {
    rcache__free(h);
    return RCACHE_ENOMEM;
  }
  memcpy(d, h, hl);
  if (len) memcpy(d + hl, data, len);
  d[hl + len] = '\0';
  rcache__free(h);
  *out = (rcache_value){d, hl + len};
  return RCACHE_OK;
}

rcache_status rcache_set_tagged(rcache *c, const char *key, const void *data, size_t len,
                                int64_t ttl_s, const char *const *tags, size_t ntags) {
  size_t tlen[RCACHE_TAGS_MAX];
  int64_t ver[RCACHE_TAGS_MAX + 1], t0 = rcache__now_us();
  BEGIN_KEYED(c, key, k);
  int64_t ttl_ms = rcache__ttl_ms(c, ttl_s);
  rcache_status s = check_tags(tags, ntags, tlen);
  if (s == RCACHE_OK && !data && len > 0) {
    rcache__errf("invalid argument: data is NULL with len %zu", len);
    s = RCACHE_EINVAL;
  }
  if (s == RCACHE_OK && ttl_ms < 0) {
    rcache__errf("invalid argument: ttl_s %lld out of range", (long long)ttl_s);
    s = RCACHE_EINVAL;
  }
  if (s == RCACHE_OK) s = rcache__remote(c, stamp(c, tags, tlen, ntags, ver));
  rcache_value v = {NULL, 0};
  if (s == RCACHE_OK) s = frame_value(tags, tlen, ntags, ver, data, len, &v);
  if (s == RCACHE_OK) s = rcache__set_full(c, &k, v.data, v.len, ttl_ms, 0);
  rcache_value_free(&v);
  rcache__key_free(&k);
  rcache__observe(c, RCACHE_OP_SET, key, s, t0, len);
  return rcache__done(c, s);
}

/* ---- invalidating ---------------------------------------------------------------------------- */

static rcache_status bump(rcache *c, const char *tag, int64_t t0) {
  rcache__key k;
  rcache_status s = version_key(c, tag, tag ? strlen(tag) : 0, &k);
  if (s == RCACHE_OK) {
    rcache__backend *be = rcache__be(c);
    int64_t v;
    if (strcmp(be->ops->mode, "none") != 0) { /* none: nothing is cached, nothing to do */
      s = rcache__remote(c, be->ops->incr(be, k.p, k.len, 1, 0, &v));
      if (c->ctx.near) rcache__near_invalidate(c->ctx.near, k.p, k.len);
    }
    rcache__key_free(&k);
  }
  rcache__observe(c, RCACHE_OP_INVALIDATE_TAG, NULL, s, t0, 0);
  return rcache__done(c, s);
}

rcache_status rcache_invalidate_tag(rcache *c, const char *tag) {
  int64_t t0 = rcache__now_us();
  rcache__err_clear();
  if (!c) return rcache__einval(NULL, "handle is NULL");
  if (!tag || !tag[0]) return rcache__einval(c, "tag is NULL or empty");
  if (strlen(tag) > UINT16_MAX) return rcache__done(c, RCACHE_ETOOBIG);
  rcache__enter(c);
  return bump(c, tag, t0);
}

rcache_status rcache_clear(rcache *c) {
  int64_t t0 = rcache__now_us();
  rcache__err_clear();
  if (!c) return rcache__einval(NULL, "handle is NULL");
  rcache__enter(c);
  return bump(c, NULL, t0);
}

/* ---- get_or_set with tags -------------------------------------------------------------------- */

rcache_status rcache_tags_add(rcache_tags *t, const char *tag) {
  if (!t) return RCACHE_EINVAL;
  rcache_status s = RCACHE_OK;
  if (!tag || !tag[0] || strlen(tag) > UINT16_MAX)
    s = RCACHE_EINVAL;
  else if (t->n == RCACHE_TAGS_MAX)
    s = RCACHE_ETOOBIG;
  else if (!(t->tag[t->n] = rcache__strdup(tag)))
    s = RCACHE_ENOMEM;
  else
    t->n++;
  if (s != RCACHE_OK && t->err == RCACHE_OK) t->err = s;
  return s;
}

typedef struct tagged_load {
  rcache *c;
  const char *const *tags;
  size_t ntags;
  const size_t *tlen;
  rcache_tagged_loader_fn load;
  void *ud;
} tagged_load;

/* Frames the loader's value with the versions read before it ran (its tags known up front)
 * and those of the tags it added, read after. */
static rcache_status finish_load(tagged_load *w, rcache_tags *added, const int64_t *before,
                                 rcache_value *out) {
  const char *all[RCACHE_TAGS_MAX];
  size_t tl[RCACHE_TAGS_MAX], n = w->ntags;
  int64_t ver[RCACHE_TAGS_MAX + 1], late[RCACHE_TAGS_MAX + 1];
  memcpy(ver, before, (n + 1) * sizeof *ver);
  for (size_t i = 0; i < n; i++) {
    all[i] = w->tags[i];
    tl[i] = w->tlen[i];
  }
  if (n + added->n > RCACHE_TAGS_MAX) return RCACHE_ETOOBIG;
  for (size_t i = 0; i < added->n; i++) {
    all[n + i] = added->tag[i];
    tl[n + i] = strlen(added->tag[i]);
  }
  if (added->n) {
    if (stamp(w->c, all + n, tl + n, added->n, late) != RCACHE_OK)
      for (size_t i = 0; i <= added->n; i++)
        late[i] = INT64_MIN; /* unreachable: stored (if at all) as stale */
    memcpy(ver + n + 1, late + 1, added->n * sizeof *ver);
  }
  rcache_value framed;
  rcache_status s = frame_value(all, tl, n + added->n, ver, out->data, out->len, &framed);
  if (s != RCACHE_OK) return s;
  rcache_value_free(out);
  *out = framed;
  return RCACHE_OK;
}

static rcache_status tagged_loader(void *ud, rcache_value *out) {
  tagged_load *w = ud;
  int64_t before[RCACHE_TAGS_MAX + 1];
  /* Before the load: an invalidation while it runs then makes what it stores already stale.
   * Unreachable versions: the value is still loaded for the caller, and stamped as stale. */
  rcache_status vs = stamp(w->c, w->tags, w->tlen, w->ntags, before);
  for (size_t i = 0; vs != RCACHE_OK && i <= w->ntags; i++)
    before[i] = INT64_MIN; /* matches no current version */
  rcache_tags added = {.n = 0, .err = RCACHE_OK};
  rcache_status s = w->load(w->ud, out, &added);
  if (s == RCACHE_OK && added.err != RCACHE_OK) s = added.err;
  if (s == RCACHE_OK && !out->data && !(out->data = rcache__memdup0("", 0))) s = RCACHE_ENOMEM;
  if (s == RCACHE_OK) s = finish_load(w, &added, before, out);
  for (size_t i = 0; i < added.n; i++)
    rcache__free(added.tag[i]);
  return s;
}

rcache_status rcache_get_or_set_tagged(rcache *c, const char *key, int64_t ttl_s,
                                       const char *const *tags, size_t ntags,
                                       rcache_tagged_loader_fn load, void *ud, rcache_value *out) {
  size_t tlen[RCACHE_TAGS_MAX];
  if (out) *out = (rcache_value){NULL, 0};
  rcache__err_clear();
  if (!c) return rcache__einval(NULL, "handle is NULL");
  if (!load) return rcache__einval(c, "load is NULL");
  rcache_status s = check_tags(tags, ntags, tlen);
  if (s != RCACHE_OK) return rcache__done(c, s);
  tagged_load w = {c, tags, ntags, tlen, load, ud};
  return rcache_get_or_set(c, key, ttl_s, tagged_loader, &w, out);
}

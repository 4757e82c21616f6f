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
 *
 * Plain values: only frames start with the magic. A plain value of the form \xff…\xff "RC\x01"…
 * (one \xff or more) is stored with one more \xff in front and loses it when read, so that
 * rcache_set / rcache_get round-trip any bytes: stored, k leading \xff before "RC\x01" mean a
 * frame for k = 1 and an escaped plain value for k >= 2.
 *
 * Reading in one round trip: a Redis backend's get_tagged runs SCRIPT below, which GETs the
 * value and, when it is a frame, MGETs the version keys named in its header. Which reads use
 * it is a per-handle hint: a bit per key hash saying whether the last value read or written
 * there was tagged. Plain reads of untagged values stay one GET; the hint only costs a
 * handle that has met a tagged value (8 KiB, then) a hash per read.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "handle.h"
#include "near/near.h"
#include "tags.h"

#define MAGIC "\xffRC\x01"
#define MAGIC_LEN 4
#define VERSION_KEY "__rc:" /* what every version key starts with */
#define TAG_KEY "__rc:tag:"
#define CLEAR_KEY RCACHE__CLEAR_KEY

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

/* k when d is k >= 1 bytes \xff then "RC\x01" (a frame when k = 1), else 0. */
static size_t magic_run(const char *d, size_t len) {
  if (len < MAGIC_LEN || (unsigned char)d[0] != 0xff) return 0; /* nearly every value */
  size_t k = 1;
  while (k < len && (unsigned char)d[k] == 0xff)
    k++;
  return len - k >= MAGIC_LEN - 1 && memcmp(d + k, &MAGIC[1], MAGIC_LEN - 1) == 0 ? k : 0;
}

bool rcache__tags_framed(const char *d, size_t len) {
  return magic_run(d, len) == 1;
}

static bool needs_escape(const void *d, size_t len) {
  return d && magic_run(d, len) > 0;
}

static rcache_status escape(const void *d, size_t len, rcache_value *out) {
  char *e = len + 2 > len ? rcache__malloc(len + 2) : NULL;
  if (!e) return RCACHE_ENOMEM;
  e[0] = (char)0xff;
  memcpy(e + 1, d, len);
  e[len + 1] = '\0';
  *out = (rcache_value){e, len + 1};
  return RCACHE_OK;
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

static bool is_integer(const void *d, size_t len) {
  int64_t n;
  return d && rcache__parse_i64(d, len, &n);
}

bool rcache__tags_settled(const char *d, size_t len, int64_t clear, size_t *head) {
  size_t k = magic_run(d, len);
  frame f;
  *head = k > 1; /* an escaped value's escape byte */
  if (k != 1) return clear == 0 || (k == 0 && is_integer(d, len));
  if (!frame_parse(d, len, &f) || f.n > 0 || f.ver[0] != clear) return false;
  *head = f.head;
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

/* How long a writer trusts the clear key's version it last read (without a near cache, whose
 * copy is kept current by tracking): a handle that only writes learns of another's clear
 * within this; until then what it writes plain reads as a miss (never a stale hit). */
#define CLEAR_FRESH_US 1000000

/* What this handle writes from now on is stamped with v (rcache__tags_plain). Every read
 * calls this: the shared fields are written only when they change or age (a quarter of
 * CLEAR_FRESH_US), so that threads reading at once do not fight over their cache line.
 *
 * Readings arrive out of order: a GET sent before this handle's rcache_clear may be answered
 * (or its reply read, by the async loop) after it, with the version from before. Taken, it
 * would stamp the next write with that version, which reads as a miss (a lost write). The
 * clear key only grows (INCRBY), except when it is deleted (FLUSHDB, eviction): so a higher
 * version is always taken, and a lower one only from a request that went out after the last
 * change was noted (asked == clear_seq), which the server ran after it, so a deletion. A
 * lower version left out is one of those readings that may be older; a deletion missed by a
 * late reading is noted by the next one. */
void rcache__tags_clear_seen(rcache *c, int64_t v, uint64_t asked) {
  int64_t now = rcache__now_us();
  int64_t cur = atomic_load_explicit(&c->clear_ver, memory_order_relaxed);
  while (cur != v) {
    if (v < cur && asked != atomic_load(&c->clear_seq)) return; /* may be older than cur */
    atomic_fetch_add(&c->clear_seq, 1); /* before: a reading racing this one is left out */
    if (atomic_compare_exchange_weak(&c->clear_ver, &cur, v)) break;
  }
  if (now - atomic_load_explicit(&c->clear_us, memory_order_relaxed) > CLEAR_FRESH_US / 4)
    atomic_store_explicit(&c->clear_us, now, memory_order_relaxed);
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
    rcache_status s = rcache__get_stored(c, &v->k[i], &val, NULL, NULL, NULL, &hit, NULL, NULL);
    ver[i] = 0;
    if (s == RCACHE_OK) { /* "": the key is absent (rcache.c keeps absent version keys so) */
      bool ok = rcache__version_of(val.len ? val.data : NULL, val.len, &ver[i]);
      rcache_value_free(&val);
      if (!ok)
        return rcache__errf("tag version key holds a value that is not a version"), RCACHE_ETYPE;
    } else if (s != RCACHE_MISS) {
      return s;
    }
  }
  return RCACHE_OK;
}

/* One MGET of m version keys into ver (an absent key reads as 0: no stored version is 0);
 * vals and st are the caller's room for m replies, st[i] ends as key i's status (RCACHE_ETYPE:
 * it holds something that is not a version). Returns the first failure. *absent: some key
 * was. */
static rcache_status mget_versions(rcache__backend *be, const char *const *p, const size_t *len,
                                   size_t m, rcache_value *vals, rcache_status *st, int64_t *ver,
                                   bool *absent) {
  for (size_t i = 0; i < m; i++) {
    vals[i] = (rcache_value){NULL, 0};
    st[i] = RCACHE_MISS;
  }
  rcache_status s;
  if (m == 1) { /* the clear key alone: a GET (an ACL user may lack MGET, never GET) */
    s = be->ops->get(be, p[0], len[0], &vals[0], NULL);
    st[0] = s == RCACHE_OK || s == RCACHE_MISS || s == RCACHE_ETYPE ? s : RCACHE_MISS;
    if (s == RCACHE_MISS || s == RCACHE_ETYPE) s = RCACHE_OK;
  } else {
    s = be->ops->get_many(be, p, len, m, vals, st);
  }
  *absent = false;
  for (size_t i = 0; i < m; i++) {
    ver[i] = 0;
    if (s != RCACHE_OK) { /* statuses and values are not filled in then */
      st[i] = s;
      continue;
    }
    if (st[i] == RCACHE_OK) {
      if (!rcache__version_of(vals[i].data, vals[i].len, &ver[i])) st[i] = RCACHE_ETYPE;
      rcache_value_free(&vals[i]);
    }
    *absent |= st[i] == RCACHE_MISS;
  }
  for (size_t i = 0; s == RCACHE_OK && i < m; i++)
    if (st[i] != RCACHE_OK && st[i] != RCACHE_MISS) s = st[i];
  if (s == RCACHE_ETYPE) rcache__errf("tag version key holds a value that is not a version");
  return s;
}

/* Reads the current versions (one MGET); with create, absent tag version keys are first
 * created with a random start and read again. The clear key ([0]) is never created here: its
 * absence says that the namespace was never cleared (only rcache_clear creates it). */
static rcache_status read_versions(rcache *c, const vkeys *v, int64_t *ver, bool create) {
  uint64_t asked = rcache__clear_asked(c);
  if (c->ctx.near && !create) {
    rcache_status s = near_versions(c, v, ver);
    if (s == RCACHE_OK) rcache__tags_clear_seen(c, ver[0], asked);
    return s;
  }
  rcache__backend *be = rcache__be(c);
  for (int round = 0; round < 2; round++) {
    rcache_value vals[RCACHE_TAGS_MAX + 1];
    rcache_status st[RCACHE_TAGS_MAX + 1];
    bool absent;
    rcache_status s = mget_versions(be, v->p, v->len, v->n, vals, st, ver, &absent);
    if (s == RCACHE_OK) rcache__tags_clear_seen(c, ver[0], asked);
    absent = false; /* now: some tag's key is */
    for (size_t i = 1; i < v->n; i++)
      absent |= st[i] == RCACHE_MISS;
    if (s != RCACHE_OK || !absent || !create || round == 1) return s;
    for (size_t i = 1; i < v->n; i++) {
      if (ver[i] != 0) continue;
      char num[24];
      int nl = snprintf(num, sizeof num, "%lld", (long long)(1 + rcache__rand01() * 4e15));
      s = be->ops->set(be, v->p[i], v->len[i], num, (size_t)nl, 0, RCACHE__SET_NX);
      /* the near cache may keep it as absent ("", version 0) until tracking says otherwise:
       * a read right after would take a value stamped now as invalidated, and unlink it */
      if (c->ctx.near) rcache__near_invalidate(c->ctx.near, v->p[i], v->len[i]);
      if (s != RCACHE_OK && s != RCACHE_MISS) return s; /* MISS: another writer created it */
    }
  }
  return RCACHE_OK;
}

/* Reads the clear key's version now (near cache: from it). An ACL user that may not read it
 * (NOPERM: a key_prefix outside its key patterns) reads the namespace as never cleared from
 * then on, said once in the log: rcache_clear cannot cover what that handle reads. */
static rcache_status clear_read(rcache *c, int64_t *v) {
  *v = 0;
  if (atomic_load_explicit(&c->clear_denied, memory_order_relaxed)) return RCACHE_OK;
  vkeys vk;
  rcache_status s = vkeys_make(c, NULL, NULL, 0, &vk);
  if (s == RCACHE_OK) s = read_versions(c, &vk, v, false);
  vkeys_free(&vk);
  if (s != RCACHE_EAUTH) return s;
  *v = 0;
  if (!atomic_exchange(&c->clear_denied, true))
    rcache__log(&c->ctx, RCACHE_LOG_WARN,
                "the server refused a read of the key_prefix's clear key (%s): this handle "
                "reads the namespace as never cleared, so rcache_clear does not cover its reads "
                "of untagged values; give the ACL user the key_prefix's keys",
                RCACHE__CLEAR_KEY);
  rcache__err_clear();
  return RCACHE_OK;
}

bool rcache__tags_plain_read(rcache *c, const rcache__key *k, const rcache__tagdecl *decl) {
  return atomic_load_explicit(&c->clear_denied, memory_order_relaxed) && !(decl && decl->n) &&
         !rcache__tags_hinted(c, k->p, k->len);
}

/* ---- reading in one round trip ------------------------------------------------------------ */

/* KEYS[1] the value's key, KEYS[2] the clear key; ARGV[1] the key_prefix, ARGV[2] "1" to add
 * the key's PTTL. Reply:
 * [value or nil, PTTL or nil, then for a well-formed frame the values of its version keys,
 * for a plain value the clear key's]. The frame is parsed as frame_parse() does; a malformed
 * one returns the value alone, for the facade to judge. Read-only (GET, PTTL, MGET): no flags
 * needed on any Redis version. */
static const char SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "local r = {v, false}\n"
    "if ARGV[2] == '1' then r[2] = redis.call('PTTL', KEYS[1]) end\n"
    "if not v then return r end\n"
    "if #v < 13 or string.sub(v, 1, 4) ~= '\\255RC\\1' then\n"
    "  r[3] = redis.call('GET', KEYS[2])\n"
    "  return r\n"
    "end\n"
    "local n, at, k = string.byte(v, 5), 14, {KEYS[2]}\n"
    "if n > 32 then return r end\n"
    "for i = 1, n do\n"
    "  if at + 1 > #v then return r end\n"
    "  local l = string.byte(v, at) * 256 + string.byte(v, at + 1)\n"
    "  if l == 0 or at + l + 9 > #v then return r end\n"
    "  k[i + 1] = ARGV[1] .. '__rc:tag:' .. string.sub(v, at + 2, at + 1 + l)\n"
    "  at = at + l + 10\n"
    "end\n"
    "local m = redis.call('MGET', unpack(k))\n"
    "for i = 1, #k do r[i + 2] = m[i] end\n"
    "return r\n";

static char script_sha[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_init(void) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static const char hex[] = "0123456789abcdef";
  if (EVP_Digest(SCRIPT, sizeof SCRIPT - 1, md, &n, EVP_sha1(), NULL) != 1 || n != 20)
    return; /* "": EVALSHA answers NOSCRIPT and EVAL runs the text */
  for (unsigned i = 0; i < 20; i++) {
    script_sha[2 * i] = hex[md[i] >> 4];
    script_sha[2 * i + 1] = hex[md[i] & 15];
  }
}

void rcache__tags_script(const char **text, const char **sha) {
  pthread_once(&sha_once, sha_init);
  *text = SCRIPT;
  *sha = script_sha;
}

#define HINT_BITS 65536 /* 8 KiB per handle that has met a tagged value */

static size_t hint_bit(const char *key, size_t klen) {
  uint32_t h = rcache__key_hash(key, klen);
  return (h ^ (h >> 16)) % HINT_BITS;
}

bool rcache__tags_hinted(rcache *c, const char *key, size_t klen) {
  _Atomic uint64_t *h = atomic_load_explicit(&c->tag_hint, memory_order_acquire);
  if (!h) return false;
  size_t b = hint_bit(key, klen);
  return (atomic_load_explicit(&h[b / 64], memory_order_relaxed) >> (b % 64)) & 1;
}

void rcache__tags_note(rcache *c, const char *key, size_t klen, bool tagged) {
  _Atomic uint64_t *h = atomic_load_explicit(&c->tag_hint, memory_order_acquire);
  if (!h) {
    if (!tagged) return;
    _Atomic uint64_t *fresh = rcache__calloc(HINT_BITS / 64, sizeof *fresh);
    if (!fresh) return; /* a cost only: tagged reads take two round trips */
    if (atomic_compare_exchange_strong(&c->tag_hint, &h, fresh))
      h = fresh;
    else
      rcache__free(fresh); /* another thread's is there: h */
  }
  size_t b = hint_bit(key, klen);
  uint64_t m = (uint64_t)1 << (b % 64);
  _Atomic uint64_t *w = &h[b / 64];
  bool set = atomic_load_explicit(w, memory_order_relaxed) & m;
  if (tagged && !set)
    atomic_fetch_or_explicit(w, m, memory_order_relaxed);
  else if (!tagged && set)
    atomic_fetch_and_explicit(w, ~m, memory_order_relaxed);
}

/* ---- the tags of tagged keys, remembered ------------------------------------------------ */

/* rcache_get of a key the hint says is tagged sends GET and an MGET of the version keys of
 * the tags its last frame had, as rcache_get_tagged does (one round trip, no Lua), when they
 * are remembered here; otherwise the script. A slot per key hash holds an immutable blob: a
 * reader takes it out of its slot (atomic exchange), copies it and puts it back, so there is
 * no lock to hold (nor for a fork to leave held); a reader that finds the slot empty (another
 * is copying it) uses the script. Remembered tags are only a hint, as rcache_get_tagged's:
 * tags that no longer match the frame cost a second round trip, never a wrong answer. */
#define MEMO_SLOTS 1024
#define MEMO_BYTES 512 /* the tags of a frame are remembered when they fit */

struct rcache__tag_memo {
  uint64_t h;                     /* the stored key's 64-bit hash */
  size_t n;                       /* tags */
  uint16_t tlen[RCACHE_TAGS_MAX]; /* their lengths */
  size_t len;                     /* their bytes in all */
  char bytes[];                   /* one after the other */
};

typedef struct rcache__tag_memo tmemo;

static uint64_t key_hash64(const char *key, size_t klen) {
  uint64_t h = 14695981039346656037u; /* FNV-1a */
  for (size_t i = 0; i < klen; i++)
    h = (h ^ (unsigned char)key[i]) * 1099511628211u;
  return h;
}

static _Atomic(tmemo *) *memo_slot(rcache *c, uint64_t h, bool make) {
  _Atomic(tmemo *) *m = atomic_load_explicit(&c->tag_memo, memory_order_acquire);
  if (!m && make) {
    _Atomic(tmemo *) *fresh = rcache__calloc(MEMO_SLOTS, sizeof *fresh);
    if (!fresh) return NULL; /* a cost only: the script reads */
    if (atomic_compare_exchange_strong(&c->tag_memo, &m, fresh))
      m = fresh;
    else
      rcache__free(fresh); /* another thread's is there: m */
  }
  return m ? &m[(h ^ (h >> 32)) % MEMO_SLOTS] : NULL;
}

/* Puts t back into its slot, unless another thread filled it meanwhile. */
static void memo_return(_Atomic(tmemo *) *slot, tmemo *t) {
  tmemo *none = NULL;
  if (!atomic_compare_exchange_strong(slot, &none, t)) rcache__free(t);
}

/* The remembered tags of the stored key (klen bytes), copied into buf: true with *m naming
 * them (m->tag pointing into buf). */
static bool memo_get(rcache *c, const char *key, size_t klen, char *buf, rcache__tagdecl *m,
                     const char **tag, size_t *tlen) {
  uint64_t h = key_hash64(key, klen);
  _Atomic(tmemo *) *slot = memo_slot(c, h, false);
  tmemo *t = slot ? atomic_exchange(slot, NULL) : NULL;
  if (!t) return false;
  bool hit = t->h == h;
  if (hit) {
    memcpy(buf, t->bytes, t->len);
    for (size_t i = 0, at = 0; i < t->n; at += t->tlen[i++]) {
      tag[i] = buf + at;
      tlen[i] = t->tlen[i];
    }
    *m = (rcache__tagdecl){tag, tlen, t->n};
  }
  memo_return(slot, t);
  return hit;
}

/* Remembers f's tags for the stored key (klen bytes), unless they are already. */
static void memo_put(rcache *c, const char *key, size_t klen, const frame *f) {
  if (c->ctx.near) return; /* its reads take versions from the near cache, never the memo */
  size_t len = 0;
  for (size_t i = 0; i < f->n; i++)
    len += f->tlen[i];
  if (len > MEMO_BYTES) return;
  uint64_t h = key_hash64(key, klen);
  _Atomic(tmemo *) *slot = memo_slot(c, h, true);
  if (!slot) return;
  tmemo *t = atomic_exchange(slot, NULL);
  bool same = t && t->h == h && t->n == f->n && t->len == len;
  for (size_t i = 0, at = 0; same && i < f->n; at += f->tlen[i++])
    same = t->tlen[i] == f->tlen[i] && memcmp(t->bytes + at, f->tag[i], f->tlen[i]) == 0;
  if (!same) {
    rcache__free(t);
    if (!(t = rcache__malloc(sizeof *t + len))) return;
    *t = (tmemo){.h = h, .n = f->n, .len = len};
    for (size_t i = 0, at = 0; i < f->n; at += f->tlen[i++]) {
      t->tlen[i] = (uint16_t)f->tlen[i];
      memcpy(t->bytes + at, f->tag[i], f->tlen[i]);
    }
  }
  memo_return(slot, t);
}

void rcache__tags_free(rcache *c) {
  _Atomic(tmemo *) *m = atomic_load(&c->tag_memo);
  for (size_t i = 0; m && i < MEMO_SLOTS; i++)
    rcache__free(atomic_load(&m[i]));
  rcache__free((void *)m);
  rcache__free((void *)atomic_load(&c->tag_hint));
}

/* vers, read for the tags of m (clear, then m's in order), rearranged in the order of the
 * frame v holds (clear, then the frame's tags), as the script reads them; vers->n = 0 when
 * m does not cover the frame's tags (the versions are then read after the value). */
static void versions_by_frame(const rcache_value *v, const rcache__tagdecl *m,
                              rcache__versions *vers) {
  frame f;
  if (v->data && vers->n && magic_run(v->data, v->len) != 1) {
    vers->n = 1; /* a plain value: the clear key's version, first, is the one it needs */
    return;
  }
  if (!v->data || !frame_parse(v->data, v->len, &f) || vers->n != m->n + 1) {
    vers->n = 0;
    return;
  }
  rcache__versions by = {.n = f.n + 1, .bad = vers->bad & 1, .asked = vers->asked};
  by.v[0] = vers->v[0];
  for (size_t i = 0; i < f.n; i++) {
    size_t j = 0;
    while (j < m->n && (m->tlen[j] != f.tlen[i] || memcmp(m->tag[j], f.tag[i], f.tlen[i]) != 0))
      j++;
    if (j == m->n) {
      vers->n = 0;
      return;
    }
    by.v[i + 1] = vers->v[j + 1];
    by.bad |= ((vers->bad >> (j + 1)) & 1) << (i + 1);
  }
  *vers = by;
}

/* The current versions of f's version keys ([0] clear, then f's tags) from got, read with
 * the value: by position (the script reads the frame's keys in its order, named without the
 * digest that long keys get, so only when none is digested) or, with decl, by tag name among
 * the declared tags. False when got does not have them all. *bad: one is not a version. */
static bool versions_from(const rcache *c, const frame *f, const rcache__versions *got,
                          const rcache__tagdecl *decl, int64_t *cur, bool *bad) {
  size_t at[RCACHE_TAGS_MAX + 1] = {0}; /* index in got of each of f's keys */
  if (decl) {
    if (got->n != decl->n + 1) return false;
    for (size_t i = 0; i < f->n; i++) {
      size_t j = 0;
      while (j < decl->n &&
             (decl->tlen[j] != f->tlen[i] || memcmp(decl->tag[j], f->tag[i], f->tlen[i]) != 0))
        j++;
      if (j == decl->n) return false; /* a tag not declared */
      at[i + 1] = j + 1;
    }
  } else {
    size_t max = c->ctx.opt.max_key_bytes, pl = c->ctx.prefix_len;
    if (got->n != f->n + 1 || pl + sizeof CLEAR_KEY - 1 > max) return false;
    for (size_t i = 0; i < f->n; i++) {
      if (pl + sizeof TAG_KEY - 1 + f->tlen[i] > max) return false;
      at[i + 1] = i + 1;
    }
  }
  *bad = false;
  for (size_t i = 0; i <= f->n; i++) {
    cur[i] = got->v[at[i]];
    *bad |= (got->bad >> at[i]) & 1;
  }
  return true;
}

rcache_status rcache__tags_read(rcache *c, rcache__backend *be, const rcache__key *k,
                                rcache_value *out, int64_t *pttl_ms, const rcache__tagdecl *decl,
                                rcache__versions *vers) {
  char buf[MEMO_BYTES];
  const char *mt[RCACHE_TAGS_MAX];
  size_t ml[RCACHE_TAGS_MAX];
  rcache__tagdecl memo;
  bool remembered = (!decl || decl->n == 0) && memo_get(c, k->p, k->len, buf, &memo, mt, ml);
  if (remembered) decl = &memo;
  /* the keys to MGET with the value: the clear key, and the tags declared or remembered; a
   * key the hint says is tagged, its tags unknown, is read by the script instead */
  bool keys = (decl && decl->n > 0) || remembered || !rcache__tags_hinted(c, k->p, k->len);
  vkeys vk;
  vk.n = 0;
  if (keys && vkeys_make(c, decl ? decl->tag : NULL, decl ? decl->tlen : NULL, decl ? decl->n : 0,
                         &vk) != RCACHE_OK)
    vk.n = 0; /* out of memory: the value alone, then the versions it needs */
  rcache_status s = be->ops->get_tagged(be, k->p, k->len, out, pttl_ms, vk.n ? vk.p : NULL,
                                        vk.n ? vk.len : NULL, vk.n, vers);
  if (vers->n && !vk.n && decl && decl->n > 0) vers->n = 0; /* not the declared keys */
  if (vers->n && vk.n && remembered) {                      /* by position, as the script's reply */
    if (s == RCACHE_OK)
      versions_by_frame(out, &memo, vers);
    else
      vers->n = 0;
  }
  vkeys_free(&vk);
  return s;
}

/* ---- reading --------------------------------------------------------------------------------- */

/* The entry key (klen bytes) is stale: unlink it so its memory goes now, not at expiry. Racing
 * a fresh write, this may drop the fresh value too: a later miss, never a stale hit. */
static void cleanup(rcache *c, const char *key, size_t klen) {
  rcache__backend *be = rcache__be(c);
  (void)be->ops->del(be, key, klen);
  if (c->ctx.near) rcache__near_invalidate(c->ctx.near, key, klen);
}

/* v without the first head bytes (its frame's header). */
static void cut_header(rcache_value *v, size_t head) {
  memmove(v->data, v->data + head, v->len - head + 1); /* with the NUL */
  v->len -= head;
}

void rcache__tags_strip(rcache_value *v) {
  frame f;
  if (v->data && frame_parse(v->data, v->len, &f)) cut_header(v, f.head);
}

rcache_status rcache__tags_watch(rcache *c) {
  /* the stored form of every version key starts with key_prefix + VERSION_KEY, or as much of
   * it as a long key's digest form keeps */
  size_t pl = c->ctx.prefix_len, mark = sizeof VERSION_KEY - 1, kept = rcache__key_kept(&c->ctx);
  if (kept < mark) mark = kept;
  char *w = rcache__malloc(pl + mark + 1);
  if (!w) return RCACHE_ENOMEM;
  memcpy(w, c->ctx.prefix, pl);
  memcpy(w + pl, VERSION_KEY, mark);
  rcache_status s = rcache__near_watch(c->ctx.near, w, pl + mark);
  rcache__free(w);
  return s;
}

/* A near hit of a tagged value: valid without reading its versions when its seal is
 * current (near.h, "Seals"); else *gen is the generation to seal it with once checked. */
static bool sealed(rcache *c, const rcache__versions *got, uint64_t *gen) {
  *gen = 0;
  if (!c->ctx.near || !got || !got->near.ticket) return false;
  *gen = rcache__near_gen(c->ctx.near); /* before the check reads any version */
  return got->near.seal == *gen;
}

/* Whether a plain value (k leading \xff before the magic, 0 when none) is still valid: while
 * the namespace was never cleared (the clear key absent), and always for a counter (a
 * decimal integer, stored plain for INCR, see rcache__tags_plain) or a reserved key. The
 * clear key's version comes with the value (got), from a current seal, or is read now. */
static rcache_status plain_valid(rcache *c, const char *key, size_t klen, const rcache_value *v,
                                 size_t k, const rcache__versions *got) {
  if (k == 0 && is_integer(v->data, v->len)) return RCACHE_OK; /* a counter */
  size_t pl = c->ctx.prefix_len, rl = sizeof VERSION_KEY - 1;
  if (klen >= pl + rl && memcmp(key + pl, VERSION_KEY, rl) == 0 &&
      memcmp(key, c->ctx.prefix, pl) == 0)
    return RCACHE_OK; /* rcache's own (__rc:stats:…, published plain): never cleared */
  uint64_t gen;
  if (sealed(c, got, &gen)) return RCACHE_OK;
  int64_t clear = 0;
  rcache_status s = RCACHE_OK;
  if (got && got->n && c->ctx.prefix_len + sizeof CLEAR_KEY - 1 <= c->ctx.opt.max_key_bytes) {
    if (got->bad & 1) s = RCACHE_ETYPE; /* read with the value */
    clear = got->v[0];
    if (s == RCACHE_OK) rcache__tags_clear_seen(c, clear, got->asked);
  } else {
    s = clear_read(c, &clear);
  }
  if (s == RCACHE_ETYPE) rcache__errf("tag version key holds a value that is not a version");
  if (s != RCACHE_OK) return s;
  if (clear != 0)
    return RCACHE_MISS; /* written before a clear, or by a client that does not frame */
  if (gen) rcache__near_seal(c->ctx.near, key, klen, got->near.ticket, gen, 0);
  return RCACHE_OK;
}

rcache_status rcache__tags_unwrap(rcache *c, const char *key, size_t klen, rcache_value *v,
                                  const rcache__versions *got, const rcache__tagdecl *decl) {
  size_t k = v->data ? magic_run(v->data, v->len) : 0;
  if (k != 1) { /* plain: as it was written */
    rcache__tags_note(c, key, klen, false);
    rcache_status s = plain_valid(c, key, klen, v, k, got);
    if (s != RCACHE_OK) {
      rcache_value_free(v);
      if (s == RCACHE_MISS) cleanup(c, key, klen);
      return s;
    }
    if (k > 1) {
      memmove(v->data, v->data + 1, v->len); /* with the NUL */
      v->len--;
    }
    return RCACHE_OK;
  }
  /* checked since the last change of a version key: the header's length came with the seal */
  uint64_t gen;
  if (sealed(c, got, &gen) && got->near.aux <= v->len) {
    cut_header(v, got->near.aux);
    return RCACHE_OK;
  }
  uint64_t asked = rcache__clear_asked(c);
  frame f;
  vkeys vk;
  int64_t cur[RCACHE_TAGS_MAX + 1];
  rcache_status s = RCACHE_EDECODE;
  bool bad = false;
  bool parsed = frame_parse(v->data, v->len, &f);
  /* a frame without tags needs only the clear key, which every read gets with the value */
  rcache__tags_note(c, key, klen, !parsed || f.n > 0);
  if (parsed && f.n > 0) memo_put(c, key, klen, &f); /* the next rcache_get reads them with it */
  if (!parsed) {
    rcache__errf("a tagged value's header is malformed");
  } else if (got && got->n && versions_from(c, &f, got, decl, cur, &bad)) { /* read with it */
    s = bad ? RCACHE_ETYPE : RCACHE_OK;
    if (bad) rcache__errf("tag version key holds a value that is not a version");
  } else if (f.n == 0) { /* (a handle that may not read the clear key reads it as 0: a miss) */
    s = clear_read(c, &cur[0]);
  } else if ((s = vkeys_make(c, f.tag, f.tlen, f.n, &vk)) == RCACHE_OK) {
    s = read_versions(c, &vk, cur, false);
    vkeys_free(&vk);
  }
  if (s == RCACHE_OK) /* what this handle writes next (got's or read now: noted already) */
    rcache__tags_clear_seen(c, cur[0], got ? got->asked : asked);
  for (size_t i = 0; s == RCACHE_OK && i <= f.n; i++)
    if (cur[i] != f.ver[i]) s = RCACHE_MISS;
  if (s == RCACHE_OK) {
    if (gen) rcache__near_seal(c->ctx.near, key, klen, got->near.ticket, gen, (uint32_t)f.head);
    cut_header(v, f.head);
    return RCACHE_OK;
  }
  rcache_value_free(v);
  if (s == RCACHE_MISS) cleanup(c, key, klen);
  return s;
}

/* The framed values of a batch: frame f[j] of vals[at[j]], its m keys' versions from ver. */
typedef struct batch {
  size_t nf, m;
  frame *f;
  size_t *at;
  rcache__key *k; /* every frame's version keys in turn: clear, then its tags */
  const char **p;
  size_t *len;
  int64_t *ver;
  rcache_value *rv;
  rcache_status *rs;
} batch;

static void batch_free(batch *b) {
  for (size_t i = 0; b->k && i < b->m; i++)
    rcache__key_free(&b->k[i]);
  rcache__free(b->f);
  rcache__free(b->at);
  rcache__free(b->k);
  rcache__free(b->p);
  rcache__free(b->len);
  rcache__free(b->ver);
  rcache__free(b->rv);
  rcache__free(b->rs);
}

/* Whether a batch's value (status st) is a frame whose versions the batch's MGET reads: one
 * with tags, or any when the clear key's version did not come with the values (got). */
static bool batched(const rcache_value *v, rcache_status st, const rcache__versions *got) {
  if (st != RCACHE_OK || !v->data || magic_run(v->data, v->len) != 1) return false;
  return !got || !got->n || v->len <= MAGIC_LEN || v->data[MAGIC_LEN] != 0;
}

/* Parses the nf frames among vals and names their version keys. RCACHE_ENOMEM, or OK. */
static rcache_status batch_make(rcache *c, rcache_value *vals, const rcache_status *st, size_t n,
                                const rcache__versions *got, batch *b) {
  b->f = rcache__malloc(b->nf * sizeof *b->f);
  b->at = rcache__malloc(b->nf * sizeof *b->at);
  if (!b->f || !b->at) return RCACHE_ENOMEM;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (batched(&vals[i], st[i], got) && frame_parse(vals[i].data, vals[i].len, &b->f[j])) {
      b->at[j++] = i;
      b->m += b->f[j - 1].n + 1;
    }
  }
  b->nf = j;
  size_t m = b->m;
  b->m = 0; /* keys made so far, for batch_free */
  b->k = rcache__malloc(m * sizeof *b->k);
  b->p = rcache__malloc(m * sizeof *b->p);
  b->len = rcache__malloc(m * sizeof *b->len);
  b->ver = rcache__malloc(m * sizeof *b->ver);
  b->rv = rcache__malloc(m * sizeof *b->rv);
  b->rs = rcache__malloc(m * sizeof *b->rs);
  if (!b->k || !b->p || !b->len || !b->ver || !b->rv || !b->rs) return RCACHE_ENOMEM;
  for (j = 0; j < b->nf; j++) {
    const frame *f = &b->f[j];
    for (size_t t = 0; t <= f->n; t++) {
      rcache__key *k = &b->k[b->m];
      if (version_key(c, t ? f->tag[t - 1] : NULL, t ? f->tlen[t - 1] : 0, k) != RCACHE_OK)
        return RCACHE_ENOMEM;
      b->p[b->m] = k->p;
      b->len[b->m++] = k->len;
    }
  }
  return RCACHE_OK;
}

void rcache__tags_unwrap_many(rcache *c, char *const *ks, const size_t *ls, rcache_value *vals,
                              rcache_status *st, size_t n, const rcache__versions *got) {
  batch b = {0};
  for (size_t i = 0; i < n; i++)
    b.nf += batched(&vals[i], st[i], got);
  /* with a near cache the versions come from it; one value costs what rcache_get does; out
   * of memory: one MGET per value */
  if (b.nf < 2 || c->ctx.near || batch_make(c, vals, st, n, got, &b) != RCACHE_OK) {
    batch_free(&b);
    for (size_t i = 0; i < n; i++)
      if (st[i] == RCACHE_OK) st[i] = rcache__tags_unwrap(c, ks[i], ls[i], &vals[i], got, NULL);
    return;
  }
  bool absent;
  rcache_status s = mget_versions(rcache__be(c), b.p, b.len, b.m, b.rv, b.rs, b.ver, &absent);
  size_t at = 0; /* the first version key of frame j */
  for (size_t i = 0, j = 0; i < n; i++) {
    if (j == b.nf || b.at[j] != i) { /* plain, a frame without tags, or one that did not parse */
      if (st[i] == RCACHE_OK) st[i] = rcache__tags_unwrap(c, ks[i], ls[i], &vals[i], got, NULL);
      continue;
    }
    const frame *f = &b.f[j++];
    /* a failed read fails every frame; a key that is not a version only its own */
    rcache_status r = s == RCACHE_ETYPE ? RCACHE_OK : s;
    for (size_t t = 0; r == RCACHE_OK && t <= f->n; t++)
      if (b.rs[at + t] == RCACHE_ETYPE) r = RCACHE_ETYPE;
    for (size_t t = 0; r == RCACHE_OK && t <= f->n; t++)
      if (b.ver[at + t] != f->ver[t]) r = RCACHE_MISS;
    at += f->n + 1;
    rcache__tags_note(c, ks[i], ls[i], true);
    if (r == RCACHE_OK) {
      rcache__tags_strip(&vals[i]);
    } else {
      rcache_value_free(&vals[i]);
      if (r == RCACHE_MISS) cleanup(c, ks[i], ls[i]);
    }
    st[i] = r;
  }
  batch_free(&b);
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
  for (size_t i = 1; s == RCACHE_OK && i <= n; i++) /* still absent (none://, evicted): stale */
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
  rcache__in_flight(c, 1);
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
  frame f;
  if (s == RCACHE_OK && frame_parse(v.data, v.len, &f)) memo_put(c, k.p, k.len, &f);
  if (s == RCACHE_OK) rcache__inval_key(c, k.p, k.len); /* as rcache_set's */
  if (s == RCACHE_OK) s = rcache__set_full(c, &k, v.data, v.len, ttl_ms, RCACHE__SET_FRAME, NULL);
  rcache_value_free(&v);
  rcache__key_free(&k);
  rcache__observe(c, RCACHE_OP_SET, key, s, t0, len);
  return rcache__done(c, s);
}

/* True with *v the clear key's version when this handle read it within CLEAR_FRESH_US
 * (without a near cache: with one, its tracked copy is read every time). */
static bool clear_known(rcache *c, int64_t *v) {
  int64_t at = atomic_load_explicit(&c->clear_us, memory_order_relaxed);
  if (c->ctx.near || !at || rcache__now_us() - at >= CLEAR_FRESH_US) return false;
  *v = atomic_load_explicit(&c->clear_ver, memory_order_relaxed);
  return true;
}

/* The clear key's version, as this handle knows it or read now. */
rcache_status rcache__tags_clear_now(rcache *c, int64_t *v) {
  return clear_known(c, v) ? RCACHE_OK : clear_read(c, v);
}

bool rcache__tags_plain_as_is(rcache *c, const void *d, size_t len) {
  int64_t clear;
  return is_integer(d, len) || (clear_known(c, &clear) && clear == 0 && !needs_escape(d, len));
}

rcache_status rcache__tags_plain(rcache *c, const void *d, size_t len, const int64_t *before,
                                 rcache_value *out) {
  *out = (rcache_value){(char *)d, len};
  if (is_integer(d, len)) return RCACHE_OK; /* a counter, or one to be: INCR takes it */
  int64_t clear = before ? *before : 0;
  rcache_status s = before ? RCACHE_OK : rcache__tags_clear_now(c, &clear);
  if (s != RCACHE_OK) return s;
  if (clear != 0) return frame_value(NULL, NULL, 0, &clear, d, len, out);
  return needs_escape(d, len) ? escape(d, len, out) : RCACHE_OK;
}

/* ---- invalidating ---------------------------------------------------------------------------- */

static rcache_status bump(rcache *c, const char *tag, int64_t t0) {
  rcache__in_flight(c, 1);
  /* get_or_set's flights: before the INCR goes out, as rcache_delete's bump (rcache.c). A tag
   * covers keys nobody here can list: every key's epoch moves (handle.h). */
  rcache__inval_by_version(c);
  rcache__key k;
  rcache_status s = version_key(c, tag, tag ? strlen(tag) : 0, &k);
  if (s == RCACHE_OK) {
    rcache__backend *be = rcache__be(c);
    int64_t v;
    if (strcmp(be->ops->mode, "none") != 0) { /* none: nothing is cached, nothing to do */
      /* the clear key moves by a random step: created by the first clear (absent means never
       * cleared), it does not come back to a value it had if it is ever deleted */
      int64_t by = tag ? 1 : 1 + (int64_t)(rcache__rand01() * 4294967295.0);
      uint64_t asked = rcache__clear_asked(c);
      s = rcache__remote(c, be->ops->incr(be, k.p, k.len, by, 0, &v));
      if (c->ctx.near) rcache__near_invalidate(c->ctx.near, k.p, k.len);
      if (!tag && s == RCACHE_OK) rcache__tags_clear_seen(c, v, asked);
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

rcache_tags *rcache__tags_new(void) {
  return rcache__calloc(1, sizeof(rcache_tags));
}

void rcache__tags_del(rcache_tags *t) {
  for (size_t i = 0; t && i < t->n; i++)
    rcache__free(t->tag[i]);
  rcache__free(t);
}

void rcache__tags_move(rcache_tags *dst, rcache_tags *src) {
  for (size_t i = 0; i < src->n; i++) {
    if (dst->n < RCACHE_TAGS_MAX) {
      dst->tag[dst->n++] = src->tag[i];
      continue;
    }
    rcache__free(src->tag[i]);
    if (dst->err == RCACHE_OK) dst->err = RCACHE_ETOOBIG;
  }
  if (dst->err == RCACHE_OK) dst->err = src->err;
  src->n = 0;
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
    rcache_status s = stamp(w->c, all + n, tl + n, added->n, late);
    if (s == RCACHE_ENOMEM) return s; /* not cached, not returned (docs/errors.md) */
    if (s != RCACHE_OK)
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
  if (vs == RCACHE_ENOMEM) return vs; /* reported as such, as rcache_get_or_set does */
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
  rcache__tagdecl decl = {tags, tlen, ntags};
  return rcache__get_or_set_framed(c, key, ttl_s, tagged_loader, &w, &decl, out);
}

rcache_status rcache_get_tagged(rcache *c, const char *key, const char *const *tags, size_t ntags,
                                rcache_value *out) {
  size_t tlen[RCACHE_TAGS_MAX];
  if (out) *out = (rcache_value){NULL, 0};
  BEGIN_KEYED(c, key, k);
  rcache_status s = out ? check_tags(tags, ntags, tlen) : RCACHE_EINVAL;
  if (!out) rcache__errf("invalid argument: out is NULL");
  rcache__tagdecl decl = {tags, tlen, ntags};
  rcache__read rd = RCACHE__READ(key);
  if (s == RCACHE_OK) {
    s = rcache__get_full(c, &k, out, NULL, NULL, &decl, &rd);
    rcache__observe_read(c, RCACHE_OP_GET_TAGGED, &rd, s, out->len);
  }
  rcache__key_free(&k);
  return rcache__done(c, s);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Replays fuzz inputs without libFuzzer: linked with one fuzz_*.c, it feeds every file of
 * the directories (or files) given on the command line to LLVMFuzzerTestOneInput once. The
 * normal and ASan builds run each target over its checked-in corpus this way (ctest
 * fuzz_replay_*), so seeds and the regress-* inputs of bugs found by fuzzing are replayed
 * by every test run, with any compiler. A target reports a failure by aborting.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "FAIL: cannot open %s\n", path);
    return 0;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
      }
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "FAIL: out of memory reading %s\n", path);
    return 0;
  }
  /* libFuzzer hands over a buffer of exactly the input's size: so do we (for ASan) */
  uint8_t *exact = malloc(len ? len : 1);
  if (exact) memcpy(exact, buf, len);
  free(buf);
  if (!exact) return 0;
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 1;
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  int ran = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "FAIL: no such input: %s\n", argv[i]);
      failed++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (replay_file(argv[i]))
        ran++;
      else
        failed++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) {
      failed++;
      continue;
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
      if (e->d_name[0] == '.') continue;
      if (nn == cap) {
        char **nv = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *nv);
        if (!nv) break;
        names = nv;
      }
      size_t l = strlen(argv[i]) + strlen(e->d_name) + 2;
      if ((names[nn] = malloc(l)) != NULL) snprintf(names[nn++], l, "%s/%s", argv[i], e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp); /* a stable order: failures reproduce */
    for (size_t k = 0; k < nn; k++) {
      if (replay_file(names[k]))
        ran++;
      else
        failed++;
      free(names[k]);
    }
    free(names);
  }
  if (ran == 0) {
    fprintf(stderr, "FAIL: no input replayed\n");
    failed++;
  }
  printf("%s: %d passed, %d failed\n", name, ran, failed);
  return failed ? 1 : 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The pure parts of issue 15's fixes: which reply types a batch's commands may get
 * (rcache__cmds_expect / rcache__cmds_fits, what conn.c checks before a connection goes
 * back to its pool), and the fork generation with the random state reseeded in children
 * (two children forked from one parent draw different reconnect jitter).
 */
#include <sys/wait.h>
#include <unistd.h>

#include "engine/conn.h"
#include "test.h"

static redisReply reply_of(int type) {
  redisReply r;
  memset(&r, 0, sizeof r);
  r.type = type;
  return r;
}

static void expectations(void) {
  rcache__cmds b = {0};
  CHECK_EQ(rcache__cmds_addv(&b, "GET", "k", NULL), RCACHE_OK);
  rcache__cmds_expect(&b, RCACHE__R_STR | RCACHE__R_NIL);
  CHECK_EQ(rcache__cmds_addv(&b, "PTTL", "k", NULL), RCACHE_OK);
  rcache__cmds_expect(&b, RCACHE__R_INT);
  CHECK_EQ(rcache__cmds_addv(&b, "ECHO", "x", NULL), RCACHE_OK); /* no mask: anything */
  redisReply s = reply_of(REDIS_REPLY_STRING), n = reply_of(REDIS_REPLY_NIL);
  redisReply i = reply_of(REDIS_REPLY_INTEGER), a = reply_of(REDIS_REPLY_ARRAY);
  redisReply e = reply_of(REDIS_REPLY_ERROR), st = reply_of(REDIS_REPLY_STATUS);
  CHECK(rcache__cmds_fits(&b, 0, &s));
  CHECK(rcache__cmds_fits(&b, 0, &n));
  CHECK(rcache__cmds_fits(&b, 0, &e));  /* an error reply always fits */
  CHECK(!rcache__cmds_fits(&b, 0, &i)); /* the PTTL's reply read as the GET's: out of step */
  CHECK(!rcache__cmds_fits(&b, 0, &a));
  CHECK(rcache__cmds_fits(&b, 1, &i));
  CHECK(!rcache__cmds_fits(&b, 1, &s));
  CHECK(rcache__cmds_fits(&b, 2, &a));
  CHECK(rcache__cmds_fits(&b, 2, &st));
  rcache__cmds_free(&b);
  /* past RCACHE__EXPECT_EACH commands, one mask for the rest: the union of theirs */
  for (int k = 0; k < RCACHE__EXPECT_EACH + 4; k++) {
    CHECK_EQ(rcache__cmds_addv(&b, k % 2 ? "ASKING" : "GET", "k", NULL), RCACHE_OK);
    rcache__cmds_expect(&b, k % 2 ? RCACHE__R_OK : RCACHE__R_STR | RCACHE__R_NIL);
  }
  CHECK(!rcache__cmds_fits(&b, 0, &st)); /* GET: precise */
  CHECK(rcache__cmds_fits(&b, RCACHE__EXPECT_EACH + 1, &st));
  CHECK(rcache__cmds_fits(&b, RCACHE__EXPECT_EACH + 1, &s));
  CHECK(!rcache__cmds_fits(&b, RCACHE__EXPECT_EACH + 1, &i));
  rcache__cmds_free(&b);
}

/* One child's first random number after fork. */
static double child_draw(void) {
  int fd[2];
  double d = -1;
  if (pipe(fd) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    double x = rcache__rand01();
    _exit(write(fd[1], &x, sizeof x) == sizeof x ? 0 : 1);
  }
  if (pid > 0) {
    if (read(fd[0], &d, sizeof d) != sizeof d) d = -1;
    waitpid(pid, NULL, 0);
  }
  close(fd[0]);
  close(fd[1]);
  return d;
}

static void fork_generation(void) {
  rcache__fork_watch();
  (void)rcache__rand01(); /* the parent's state exists: children inherit it */
  uint64_t g = rcache__fork_gen();
  int fd[2];
  CHECK(pipe(fd) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    uint64_t cg = rcache__fork_gen();
    _exit(write(fd[1], &cg, sizeof cg) == sizeof cg ? 0 : 1);
  }
  uint64_t cg = 0;
  CHECK(read(fd[0], &cg, sizeof cg) == sizeof cg);
  waitpid(pid, NULL, 0);
  close(fd[0]);
  close(fd[1]);
  CHECK_EQ(cg, g + 1);             /* the child knows it is one */
  CHECK_EQ(rcache__fork_gen(), g); /* the parent is unchanged */
  double a = child_draw(), b = child_draw();
  CHECK(a >= 0 && a < 1 && b >= 0 && b < 1);
  CHECK(a != b); /* same parent state, different draws: reseeded per process */
}

int main(void) {
  expectations();
  fork_generation();
  return test_report("test_desync_fork");
}

/* Assertions shared by the unit tests: a failed check prints where and
 * what, then exits 1, so that a test executable fails loudly. */
#ifndef QNBD_TESTS_UNIT_CHECK_H
#define QNBD_TESTS_UNIT_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* Two unsigned integers are equal. */
#define CHECK_EQ(a, b)                                                         \
  do {                                                                         \
    uint64_t check_a_ = (a), check_b_ = (b);                                   \
    if (check_a_ != check_b_) {                                                \
      fprintf(stderr,                                                          \
              "%s:%d: check failed: %s == %s (%" PRIu64 " != %" PRIu64 ")\n",  \
              __FILE__, __LINE__, #a, #b, check_a_, check_b_);                 \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* expr returns 0 or a negative errno: it must succeed. */
#define CHECK_OK(expr)                                                         \
  do {                                                                         \
    int check_r_ = (expr);                                                     \
    if (check_r_ < 0) {                                                        \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,     \
              strerror(-check_r_));                                            \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* expr must fail with exactly -err. */
#define CHECK_ERR(expr, err)                                                   \
  do {                                                                         \
    int check_r_ = (expr);                                                     \
    if (check_r_ != -(err)) {                                                  \
      fprintf(stderr, "%s:%d: %s returned %d, expected -%s\n", __FILE__,       \
              __LINE__, #expr, check_r_, #err);                                \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* Run one test function and say so. */
#define RUN(fn)                                                                \
  do {                                                                         \
    fn();                                                                      \
    printf("ok %s\n", #fn);                                                    \
    fflush(stdout);                                                            \
  } while (0)

#endif

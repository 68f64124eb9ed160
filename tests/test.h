/*
 * test.h -- a minimal harness: checks count and report, main returns the verdict.
 *
 * A failed check prints file:line and the expression and the test goes on, so
 * one run shows every failure.  T_RUN prints each test's name; T_DONE prints
 * "N passed, N failed" and is main's return value (0 only when nothing failed).
 */
#ifndef MNEMO_TEST_H
#define MNEMO_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_checks, t_failed_checks, t_tests, t_failed_tests;

#define T_CHECK(cond)                                                                              \
  do {                                                                                             \
    t_checks++;                                                                                    \
    if (!(cond)) {                                                                                 \
      t_failed_checks++;                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
    }                                                                                              \
  } while (0)

#define T_CHECK_MSG(cond, ...)                                                                     \
  do {                                                                                             \
    t_checks++;                                                                                    \
    if (!(cond)) {                                                                                 \
      t_failed_checks++;                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                     \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

#define T_EQ_INT(a, b)                                                                             \
  do {                                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                                            \
    T_CHECK_MSG(a_ == b_, "%lld != %lld", a_, b_);                                                 \
  } while (0)

#define T_EQ_STR(a, b)                                                                             \
  do {                                                                                             \
    const char *a_ = (a), *b_ = (b);                                                               \
    T_CHECK_MSG(a_ &&b_ &&strcmp(a_, b_) == 0, "\"%s\" != \"%s\"", a_ ? a_ : "(null)",             \
                b_ ? b_ : "(null)");                                                               \
  } while (0)

#define T_CONTAINS(hay, needle)                                                                    \
  do {                                                                                             \
    const char *h_ = (hay), *n_ = (needle);                                                        \
    T_CHECK_MSG(h_ &&strstr(h_, n_), "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);    \
  } while (0)

#define T_RUN(fn)                                                                                  \
  do {                                                                                             \
    int before_ = t_failed_checks;                                                                 \
    fprintf(stderr, "-- %s\n", #fn);                                                               \
    fn();                                                                                          \
    t_tests++;                                                                                     \
    if (t_failed_checks != before_) t_failed_tests++;                                              \
  } while (0)

#define T_DONE()                                                                                   \
  (printf("%d checks in %d tests: %d passed, %d failed\n", t_checks, t_tests,                      \
          t_tests - t_failed_tests, t_failed_tests),                                               \
   t_failed_tests ? 1 : 0)

#endif /* MNEMO_TEST_H */

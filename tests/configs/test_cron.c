/*
 * test_cron.c -- the refresh schedule (configs/cron.c): next firing times worked out with Python's
 * datetime (leap day, day-of-month OR day-of-week, Sunday as 7, steps, strictly after), against a
 * minute-by-minute scan with libc's gmtime_r (twenty firings each), and refused expressions.
 */
#include "configs/config.h"
#include "tests/test.h"

#include <string.h>
#include <time.h>

int64_t mn_cron__days_from_civil(int64_t y, int m, int d);

static int64_t next_of(const char *expr, int64_t after)
{
  mn_cron c;
  mn_error err = {0};
  int64_t t = -1;
  if (mn_cron_parse(expr, &c, &err) != MN_OK || mn_cron_next(&c, after, &t, &err) != MN_OK)
    fprintf(stderr, "%s: %s\n", expr, err.msg);
  return t;
}

static void worked_examples(void)
{
  /* 2026-11-26T10:00Z, a Thursday */
  T_EQ_INT(next_of("0 3 * * *", 1795687200), 1795748400);         /* 2026-11-27 03:00 */
  T_EQ_INT(next_of("*/15 * * * *", 1795687650), 1795688100);      /* 10:07:30 -> 10:15 */
  T_EQ_INT(next_of("0 0 29 2 *", 1795687200), 1835395200);        /* 2028-02-29 */
  T_EQ_INT(next_of("0 0 1 * 1", 1795687200), 1795996800);         /* Monday 2026-11-30 */
  T_EQ_INT(next_of("30 4 * * 7", 1795687200), 1795926600);        /* Sunday 2026-11-29 */
  T_EQ_INT(next_of("30 4 * * 0", 1795687200), 1795926600);        /* 0 is Sunday too */
  T_EQ_INT(next_of("0 3 * * *", 1795748400), 1795834800);         /* strictly after */
  T_EQ_INT(next_of("5-10/2 1 * 1-3 *", 1795687200), 1798765500);  /* 2027-01-01 01:05 */
  T_EQ_INT(next_of("  0   3 * *   *  ", 1795687200), 1795748400); /* spacing is free */
  T_EQ_INT(mn_cron__days_from_civil(1970, 1, 1), 0);
  T_EQ_INT(mn_cron__days_from_civil(2000, 3, 1), 11017);
}

/* the first minute after `after` whose gmtime_r fields match, scanning up to `limit` minutes */
static int64_t scan(const mn_cron *c, int64_t after, int limit)
{
  int64_t t = (after / 60 + 1) * 60;
  for (int i = 0; i < limit; i++, t += 60) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    bool dom = (c->days >> tm.tm_mday) & 1, dow = (c->weekdays >> tm.tm_wday) & 1;
    bool day = !c->any_day && !c->any_weekday ? dom || dow : dom && dow;
    if (((c->minutes >> tm.tm_min) & 1) && ((c->hours >> tm.tm_hour) & 1) &&
        ((c->months >> (tm.tm_mon + 1)) & 1) && day)
      return t;
  }
  return -1;
}

static void against_a_scan(void)
{
  const char *exprs[] = {"0 3 * * *",    "*/7 */5 * * *",      "15,45 9-17 * * 1-5",
                         "0 0 1,15 * 3", "59 23 31 * *",       "0 12 * 2 0",
                         "0 0 * * 6,7",  "1-59/29 2 10-12 * *"};
  int64_t start = 1795687200; /* 2026-11-26 10:00 */
  for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
    mn_cron c;
    mn_error err = {0};
    T_EQ_INT(mn_cron_parse(exprs[e], &c, &err), MN_OK);
    int64_t after = start;
    for (int k = 0; k < 20; k++) { /* twenty firings in a row */
      int64_t got = -1, want = scan(&c, after, 400 * 1440);
      if (mn_cron_next(&c, after, &got, &err) != MN_OK) got = -2;
      T_CHECK_MSG(got == want, "%s after %lld: %lld, the scan says %lld", exprs[e],
                  (long long)after, (long long)got, (long long)want);
      if (got != want || want < 0) break;
      after = got + 17; /* not on a minute boundary */
    }
  }
}

static void refused(void)
{
  const char *bad[][2] = {{"61 * * * *", "minute"},
                          {"* * *", "3 fields"},
                          {"5-2 * * * *", "minute"},
                          {"*/0 * * * *", "minute"},
                          {"a * * * *", "minute"},
                          {"* * * * * *", "more than five"},
                          {"1,,2 * * * *", "empty item"},
                          {"* 24 * * *", "hour"},
                          {"* * 0 * *", "day of month"},
                          {"* * * 13 *", "month"},
                          {"* * * * 8", "day of week"},
                          {"* * * * mon", "day of week"},
                          {"", "0 fields"},
                          {"1, * * * *", "empty item"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mn_cron c;
    mn_error err = {0};
    T_EQ_INT(mn_cron_parse(bad[i][0], &c, &err), MN_ERR_INPUT);
    T_CHECK_MSG(strstr(err.msg, bad[i][1]) != NULL, "\"%s\": %s", bad[i][0], err.msg);
  }
  mn_cron c;
  mn_error err = {0};
  int64_t t;
  T_EQ_INT(mn_cron_parse("0 0 30 2 *", &c, &err), MN_OK); /* valid, but never fires */
  T_EQ_INT(mn_cron_next(&c, 1795687200, &t, &err), MN_ERR_INPUT);
  T_CHECK(strstr(err.msg, "never fires") != NULL);
}

int main(void)
{
  T_RUN(worked_examples);
  T_RUN(against_a_scan);
  T_RUN(refused);
  return T_DONE();
}
